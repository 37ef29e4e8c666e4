from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "configuration.md").read_text()
URLS = ROOT / "adapters" / "urls.py"
THIS_FILE = Path(__file__).resolve()  # the scanner's own patterns are not variables
# Everything in the repository that may read the environment: the package, and the tests,
# benchmarks, examples and tools run from a checkout.
FOLDERS = ("domain", "runtime", "projections", "adapters", "tests", "examples", "benchmarks", "tools", ".ci")
PHASELOG_NAME = re.compile(r"\bPHASELOG_[A-Z_]*[A-Z]\b")
READ_ENV = re.compile(
    r"""os\.environ\.get\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
    r"""|getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|\$\{([A-Z][A-Z0-9_]*):?-"""
)
URL_PARAM_READ = re.compile(r"""\w+_param\(\s*\w+,\s*["']([a-z_]+)["']""")


def _texts() -> dict[Path, str]:
    """Every text file of FOLDERS but this one (binary fixtures and caches left out)."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path == THIS_FILE:
                continue
            try:
                found[path] = path.read_text()
            except UnicodeDecodeError:
                continue
    return found


def _python_constants(texts: dict[Path, str]) -> set[str]:
    """PHASELOG_* names that are Python constants (e.g. a tuple of recorder classes), not variables."""
    names: set[str] = set()
    for path, text in texts.items():
        if path.suffix != ".py":
            continue
        for node in ast.parse(text).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names.update(t.id for t in targets if isinstance(t, ast.Name) and t.id.startswith("PHASELOG_"))
    return names


def _environment_variables() -> set[str]:
    texts = _texts()
    names = {name for text in texts.values() for name in PHASELOG_NAME.findall(text)}
    names -= _python_constants(texts)
    for text in texts.values():
        names.update(next(g for g in match if g) for match in READ_ENV.findall(text))
    return names


def _url_parameters() -> set[str]:
    """Every query parameter adapters/urls.py accepts: its *PARAMETERS sets and each one it parses."""
    text = URLS.read_text()
    names: set[str] = set(URL_PARAM_READ.findall(text))
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.endswith("PARAMETERS") for t in node.targets
        ):
            names.update(
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    return names


def _documented(heading: str) -> set[str]:
    """The names in the first column of the tables under the doc's ``## heading``."""
    section = DOC.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    """Each PHASELOG_* name in the code, and each variable read via os.environ or ${VAR:-}, has a row."""
    found = _environment_variables()
    assert {"PHASELOG_URL", "PHASELOG_TEST_DSN", "PGUSER"} <= found  # the scan itself works
    assert sorted(found - _documented("Environment variables")) == []


def test_every_url_parameter_is_documented() -> None:
    """Each query parameter adapters/urls.py accepts (phaselog's own and the ones it parses) has a row."""
    found = _url_parameters()
    assert {"schema", "max_event_bytes", "connect_timeout", "seal_interval"} <= found
    assert sorted(found - _documented("Store URL parameters")) == []


def test_the_doc_names_nothing_the_code_lacks() -> None:
    """No row of docs/configuration.md names a variable or URL parameter the code no longer has."""
    assert sorted(_documented("Environment variables") - _environment_variables()) == []
    assert sorted(_documented("Store URL parameters") - _url_parameters()) == []


def test_readme_links_the_configuration_doc() -> None:
    """README.md links docs/configuration.md."""
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text()
