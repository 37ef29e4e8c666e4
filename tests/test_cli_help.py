"""The CLI's help (metavars, help texts), its install hints, and what ``phaselog streams`` explains."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_support import assert_one_line_error, fill, phaselog

from phaselog.adapters import open_store
from phaselog.adapters.cli.app import _mount_subcommands, app

METAVAR = re.compile(r"[A-Z][A-Z_]*(\.\.\.)?")


def _commands() -> list[tuple[list[str], Any]]:
    """Every ``phaselog`` command and group with the words that name it."""
    _mount_subcommands()
    found: list[tuple[list[str], Any]] = []

    def walk(command: Any, words: list[str]) -> None:
        found.append((words, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])

    walk(typer.main.get_command(app), [])
    return found


# -- 4. consistent metavars and a help text for everything ------------------------------------------------
def test_every_argument_and_option_has_help_and_an_upper_case_metavar() -> None:
    """Each argument and each option taking a value has a help string and a metavar like STREAM or PATH."""
    for words, command in _commands():
        for param in command.params:
            where = (" ".join(words), param.name)
            assert getattr(param, "help", None), where
            takes_value = param.param_type_name == "argument" or not (param.is_flag or param.count)
            if takes_value:
                assert param.metavar is not None, where
                assert METAVAR.fullmatch(param.metavar), where


def test_help_pages_show_no_braces_type_labels_or_lower_case_arguments(tmp_path: Path) -> None:
    """No help page shows `{STREAM}`, `<list[Path]>`/`<int>` labels or `[name]`: upper-case words only."""
    for words, _command in _commands():
        shown = phaselog(*words, "--help", cwd=tmp_path)
        assert shown.returncode == 0, (words, shown.stderr)
        usage = shown.stdout.strip().splitlines()[0]
        assert "{" not in usage, (words, usage)
        assert not re.search(r"<[a-z][^>]*>", shown.stdout), (words, shown.stdout)
        assert not re.search(r"\[[a-z_]+\]", usage), (words, usage)
    timeline = phaselog("audit", "timeline", "--help", cwd=tmp_path).stdout
    assert "Usage: phaselog audit timeline [OPTIONS] STREAM" in timeline
    assert "[OPTIONS] [NAME]" in phaselog("projections", "rebuild", "--help", cwd=tmp_path).stdout
    assert "--archive FILE" in phaselog("audit", "verify", "--help", cwd=tmp_path).stdout


# -- 7. install hints work from a checkout too -----------------------------------------------------------
@pytest.mark.parametrize(
    ("blocked", "command", "extra"),
    [
        ("uvicorn", ["serve", "--url", "sqlite:///x.db"], "serve"),
        ("prometheus_client", ["projections", "run", "--metrics-port", "0"], "otel"),
    ],
)
def test_a_missing_extra_names_how_to_install_it_from_a_checkout(
    blocked: str, command: list[str], extra: str, tmp_path: Path
) -> None:
    """The hint for a missing extra gives `pip install 'phaselog[X]'` and `pip install '.[X]'` (checkout)."""
    shadow = tmp_path / "shadow" / blocked
    shadow.mkdir(parents=True)
    missing = f"No module named {blocked!r}"
    (shadow / "__init__.py").write_text(f"raise ModuleNotFoundError({missing!r}, name={blocked!r})\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url):
        pass
    args = [a if a != "sqlite:///x.db" else url for a in command]
    if "--url" not in args:
        args += ["--url", url]
    result = phaselog(*args, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "shadow")})
    message = assert_one_line_error(result)
    assert f"pip install 'phaselog[{extra}]'" in message
    assert f"pip install '.[{extra}]'" in message
    assert "checkout" in message


# -- 9. streams explains its open column ---------------------------------------------------------------
def test_streams_explains_what_open_means(durable_url: str, tmp_path: Path) -> None:
    """The streams table and its help say that open means the head is not closed: it still takes events."""
    with open_store(durable_url) as store:
        fill(store)
    table = phaselog("streams", "--url", durable_url, cwd=tmp_path, columns=100)
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert "open: the stream's head is not closed" in text
    assert "still accepts events" in text
    helped = " ".join(phaselog("streams", "--help", cwd=tmp_path).stdout.split())
    assert "open" in helped
    assert "head is not closed" in helped
