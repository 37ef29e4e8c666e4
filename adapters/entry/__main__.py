# ruff: noqa: INP001 - deliberately no __init__.py: this folder only holds the module phaselog.__main__
"""``python -m phaselog``: the ``phaselog`` command (installed as the module ``phaselog.__main__``).

phaselog is a namespace package (no ``phaselog/`` folder), so pyproject.toml maps
this one file to ``phaselog.__main__`` (``py-modules`` with a ``package-dir`` entry).
"""

from __future__ import annotations

import sys

from phaselog.adapters.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
