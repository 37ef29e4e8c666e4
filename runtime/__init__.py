"""Application services: plugin machines, task controllers, plans, recoverable state."""

__all__: list[str] = []
