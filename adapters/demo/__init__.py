"""The scenarios ``phaselog demo`` runs: plugins, tasks, plans, recoverable state and the read models."""

__all__: list[str] = []
