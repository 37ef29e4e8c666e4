from __future__ import annotations

import ast
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


DRIVERS = ("psycopg", "psycopg_pool", "sqlite3", "eventsourcing.postgres", "eventsourcing.sqlite")


@pytest.mark.parametrize("path", [*_modules("runtime"), *_modules("projections")], ids=lambda p: p.name)
def test_runtime_and_projections_import_no_driver(path: Path) -> None:
    """runtime/ and projections/ reach a database only through the ports they own, never a driver."""
    bad = sorted(n for n in _imports(path) for d in DRIVERS if n == d or n.startswith(d + "."))
    assert bad == [], f"{path.parent.name}/{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("projections"), ids=lambda p: p.name)
def test_projections_depend_on_no_adapter(path: Path) -> None:
    """projections/ imports no adapter: the composition root hands it its log reader and view store."""
    bad = sorted(n for n in _imports(path) if n == "phaselog.adapters" or n.startswith("phaselog.adapters."))
    assert bad == [], f"projections/{path.name} imports {bad}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[:2] == ["adapters", "aio"]:
        parts = ["aio", *parts[2:]]  # installed as phaselog.aio (package-dir)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["phaselog", *parts])


def _import_graph() -> dict[str, set[str]]:
    """Each phaselog module and the phaselog modules it imports anywhere (TYPE_CHECKING, functions too)."""
    modules = {_module_name(p): p for layer in LAYERS for p in _modules(layer) if "entry" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - max(node.level - 1, 0)]
                source = ".".join([*base, node.module or ""]).strip(".") if node.level else node.module or ""
                for alias in node.names:
                    child = f"{source}.{alias.name}"
                    deps.add(child if child in modules else source)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_circle() -> None:
    """No phaselog modules import each other in a circle, not even lazily or only for type checking."""
    assert _circles(_import_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    """The circle check itself reports a circle of three modules and ignores a chain."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


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
def test_wheel_contains_exactly_the_layer_folders(wheel: zipfile.ZipFile) -> None:
    """The built wheel packages every module of the four layer folders (subpackages too), and nothing else."""
    packaged = {n for n in wheel.namelist() if n.startswith("phaselog/")}
    expected = {
        # adapters/aio/ is installed as phaselog.aio (package-dir), not as phaselog.adapters.aio
        f"phaselog/{layer}/{p.relative_to(ROOT / layer).as_posix()}".replace("/adapters/aio/", "/aio/")
        for layer in LAYERS
        for p in (ROOT / layer).rglob("*")
        if (p.suffix == ".py" or p.name == "py.typed")
        and "__pycache__" not in p.parts
        and p.parent != ROOT / "adapters" / "entry"
    }
    # python -m phaselog: adapters/entry/__main__.py ships only as this (py-modules), not under adapters/
    expected.add("phaselog/__main__.py")
    assert packaged == expected
