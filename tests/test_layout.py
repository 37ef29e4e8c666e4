from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("domain", "runtime", "projections", "adapters")
FORBIDDEN_IN_DOMAIN = (
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "socket",
    "subprocess",
    "os",
    "pathlib",
    "shutil",
    "asyncio",
    "urllib",
    "http",
    "typer",
    "rich",
    "eventsourcing.persistence",
    "eventsourcing.postgres",
    "eventsourcing.sqlite",
    "eventsourcing.popo",
    "eventsourcing.application",
    "eventsourcing.projection",
    "phaselog.adapters",
    "phaselog.runtime",
    "phaselog.projections",
)
MAX_MODULE_LINES = 400


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: p.name)
def test_domain_imports_no_outer_layer_and_no_io(path: Path) -> None:
    """domain/ stays pure: no outer phaselog layer, no driver, no I/O module."""
    bad = sorted(
        name
        for name in _imports(path)
        for banned in FORBIDDEN_IN_DOMAIN
        if name == banned or name.startswith(banned + ".")
    )
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("runtime"), ids=lambda p: p.name)
def test_runtime_depends_on_its_own_store_port_not_on_adapters(path: Path) -> None:
    """runtime/ imports no adapter: it types stores with its own port (runtime/ports.py)."""
    bad = sorted(n for n in _imports(path) if n == "phaselog.adapters" or n.startswith("phaselog.adapters."))
    assert bad == [], f"runtime/{path.name} imports {bad}"


def test_runtime_and_projections_do_not_import_the_cli() -> None:
    """Inner layers never import the CLI or demo adapters."""
    for folder in ("runtime", "projections"):
        for path in _modules(folder):
            cli = [
                n for n in _imports(path) if n.startswith(("phaselog.adapters.cli", "phaselog.adapters.demo"))
            ]
            assert cli == [], f"{folder}/{path.name} imports {cli}"


@pytest.mark.parametrize("layer", [*LAYERS, "aio"])
def test_public_names_are_sorted_and_exist(layer: str) -> None:
    """Each subpackage declares a sorted __all__ whose names all import."""
    module = __import__(f"phaselog.{layer}", fromlist=["__all__"])
    names = list(module.__all__)
    assert names == sorted(names, key=_isort_key)
    for name in names:
        assert hasattr(module, name), f"phaselog.{layer} lacks {name}"


def test_modules_are_small() -> None:
    """No package module grows past the size a reader can hold in mind."""
    big = {
        str(p.relative_to(ROOT)): n
        for layer in LAYERS
        for p in _modules(layer)
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}


def test_every_test_says_what_it_pins() -> None:
    """Every test function carries a one-line docstring stating the behaviour it pins."""
    missing = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                doc = ast.get_docstring(node)
                if not doc or "\n" in doc.strip():
                    missing.append(f"{path.name}::{node.name}")
    assert missing == []


def test_no_phaselog_folder_shadows_the_namespace() -> None:
    """Phaselog is an implicit namespace package: there is no phaselog/ folder."""
    assert not (ROOT / "phaselog").exists()
    import phaselog  # noqa: PLC0415

    assert getattr(phaselog, "__file__", None) is None


@pytest.mark.slow
def test_wheel_contains_exactly_the_layer_folders(tmp_path: Path) -> None:
    """The built wheel packages every module of the four layer folders (subpackages too), and nothing else."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("phaselog-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        packaged = {n for n in zf.namelist() if n.startswith("phaselog/")}
    expected = {
        # adapters/aio/ is installed as phaselog.aio (package-dir), not as phaselog.adapters.aio
        f"phaselog/{layer}/{p.relative_to(ROOT / layer).as_posix()}".replace("/adapters/aio/", "/aio/")
        for layer in LAYERS
        for p in (ROOT / layer).rglob("*")
        if (p.suffix == ".py" or p.name == "py.typed") and "__pycache__" not in p.parts
    }
    expected.add("phaselog/__main__.py")  # python -m phaselog (py-modules: adapters/entry/__main__.py)
    assert packaged == expected
