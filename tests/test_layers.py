"""The layers point one way: tui → sim → model. The core runs headless."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests import paths

ROOT = paths.ROOT


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_model_imports_neither_sim_nor_tui() -> None:
    assert not _imports("model") & {"sim", "tui", "textual", "rich"}


def test_sim_never_imports_tui_or_textual() -> None:
    assert not _imports("sim") & {"tui", "textual", "rich"}


def test_a_trace_runs_without_textual_or_rich_loaded() -> None:
    code = (
        "import sys\n"
        "from sim.cluster.load import demo_cluster\n"
        "from sim.trace.request import Request\n"
        "from sim.trace.tracer import trace\n"
        "from sim.trace.report import trace_text\n"
        "t = trace(demo_cluster(), Request('pod1', 'svc-b:80', seed=1))\n"
        "trace_text(t)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'tui'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
