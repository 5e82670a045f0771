"""One parser for every subcommand: the lab's steps, `python -m tui.cli`, and lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import paths
from tui.cli import build_parser, run

ROOT = paths.ROOT


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_one_parser_knows_the_lab_and_its_options() -> None:
    args = build_parser().parse_args(["lab", "verify", "--cluster", "c.yaml", "--flows", "4"])
    assert (args.command, args.lab_command) == ("lab", "verify")
    assert (args.clusters, args.flows, args.seed) == (["c.yaml"], 4, 1)


def test_lab_without_a_step_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["lab"]) == 2
    assert capsys.readouterr().err == (
        "kubehop lab: say what to do: up, verify or down (see 'kubehop lab --help')\n"
    )


def test_lab_refuses_a_bad_flow_count_before_touching_the_machine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["lab", "verify", "--flows", "-1"]) == 2
    assert capsys.readouterr().err == "kubehop lab: error: --flows -1: must be 0-10000\n"


def test_lab_takes_one_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--cluster", "a.yaml", "lab", "up", "--cluster", "b.yaml"]) == 2
    assert capsys.readouterr().err == (
        "kubehop: error: lab takes one --cluster; put the files in a directory and give that\n"
    )


def test_python_m_tui_cli_is_the_kubehop_command() -> None:
    done = _python("-m", "tui.cli", "scenarios")
    assert done.returncode == 0, done.stderr
    assert "kubehop trace" in done.stdout
    done = _python("-m", "tui.cli", "trace")
    assert done.returncode == 2
    assert done.stderr.startswith("kubehop: error: the following arguments are required")


def _loaded(argv: list[str], heavy: tuple[str, ...]) -> list[str]:
    """The modules starting with one of `heavy` that `kubehop ARGV` imports."""
    code = (
        "import contextlib, io, json, sys\n"
        "from tui.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        run({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({heavy!r}))))\n"
    )
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["lab", "--help"],
        ["completion", "bash"],
        ["trace", "pod1", "svc-b:80", "--seed", "1"],
    ],
)
def test_help_and_trace_load_neither_textual_nor_the_lab(argv: list[str]) -> None:
    # The lab's modules and Textual cost start-up time; only `lab` and the app pay it.
    assert _loaded(argv, ("textual", "textual_serve", "rich", "sim.lab", "tui.app")) == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["completion", "zsh"]])
def test_help_version_and_the_completion_script_load_no_simulation(argv: list[str]) -> None:
    # Shell completion itself is checked in test_completion.py, as the shell runs it.
    assert _loaded(argv, ("sim", "pydantic", "yaml", "textual", "rich")) == []
