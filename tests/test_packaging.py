from __future__ import annotations

import email
import tomllib
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _metadata(wheel: zipfile.ZipFile) -> Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


@pytest.mark.slow
def test_wheel_ships_main_only_as_phaselog_main(wheel: zipfile.ZipFile) -> None:
    """The wheel has phaselog/__main__.py and no phaselog/adapters/entry/ file (entry/ is only its source)."""
    names = wheel.namelist()
    assert "phaselog/__main__.py" in names
    assert [n for n in names if n.startswith("phaselog/adapters/entry/")] == []


@pytest.mark.slow
def test_wheel_metadata_names_urls_author_and_classifiers(wheel: zipfile.ZipFile) -> None:
    """The wheel's metadata names the project URLs, the author and the typed/asyncio/database classifiers."""
    meta = _metadata(wheel)
    urls = dict(value.split(", ", 1) for value in meta.get_all("Project-URL", []))
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert all(url.startswith("https://github.com/phaselog/phaselog") for url in urls.values())
    assert meta["Author"] == "phaselog developers"
    classifiers = set(meta.get_all("Classifier", []))
    assert {
        "Development Status :: 4 - Beta",
        "Framework :: AsyncIO",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3.11",
        "Topic :: Database",
        "Typing :: Typed",
    } <= classifiers
    assert meta["License-Expression"] == "MIT"


def test_dev_extra_leaves_mutmut_playwright_and_fastapi_to_their_extras() -> None:
    """mutmut, playwright and fastapi/httpx are in the mutation, browser and examples extras, not in dev."""
    extras = PYPROJECT["project"]["optional-dependencies"]

    def names(extra: str) -> set[str]:
        return {req.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for req in extras[extra]}

    assert names("dev").isdisjoint({"mutmut", "playwright", "fastapi", "httpx"})
    assert "mutmut" in names("mutation")
    assert "playwright" in names("browser")
    assert {"fastapi", "httpx"} <= names("examples")


def test_readme_test_command_installs_the_extras_the_suite_needs() -> None:
    """The README's test command (what .ci/run runs) installs dev, browser and examples."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command -->", 1)[1].split("<!-- /test-command -->", 1)[0]
    assert "pip install -e '.[dev,browser,examples]' --config-settings editable_mode=strict &&" in block
