"""The ``phaselog`` command: one module per command group, ``app`` assembles them."""

__all__: list[str] = []
