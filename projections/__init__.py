"""Read models rebuilt from the event log, and their runner."""

__all__: list[str] = []
