"""The layers point one way, inside `sim` and `tui` too. The core runs headless.

model ← sim.collector, sim.memo, sim.ondemand ← sim.readers, sim.kernel ← sim.cni, sim.proxy ←
sim.cluster ← sim.trace ← sim.lab ← tui. Each package may import only what sits below it (and itself);
the table below is the whole rule, checked on every import statement,
including those inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import paths

ROOT = paths.ROOT


BASE = ("sim.collector", "sim.memo", "sim.ondemand")
"""Modules every layer of the core may use."""

# Package → the project packages it may import (besides itself). A package
# missing here inherits its parent's rule.
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    # What the core's layers share: the collector paused, results kept per cluster.
    "sim.collector": set(),
    "sim.memo": {"model", "sim.collector"},
    "sim.ondemand": set(),
    "sim.readers": {"model", *BASE},
    "sim.kernel": {"model", *BASE},
    "sim.cni": {"model", "sim.kernel", *BASE},
    "sim.proxy": {"model", "sim.kernel", "sim.readers", *BASE},
    # IPVS in the kernel: its hooks and schedulers see the model and the kernel only.
    "sim.kernel.ipvs": {"model", "sim.kernel", *BASE},
    # IPVS mode reuses iptables mode's spelling and the shared endpoint lookups.
    "sim.proxy.ipvs": {"model", "sim.kernel", "sim.readers", "sim.proxy", *BASE},
    "sim.cluster": {"model", "sim.readers", "sim.kernel", "sim.cni", "sim.proxy", *BASE},
    "sim.trace": {
        "model",
        "sim.readers",
        "sim.kernel",
        "sim.cni",
        "sim.proxy",
        "sim.cluster",
        *BASE,
    },
    "sim.lab": {
        *BASE,
        "model",
        "sim.readers",
        "sim.kernel",
        "sim.cni",
        "sim.proxy",
        "sim.cluster",
        "sim.trace",
    },
    # The app reaches the core through its session; widgets only render.
    "tui": {"model"},
    "tui.widgets": {"model", "tui.hopstyle", "tui.widgets"},
    "tui.screens": {"model", "tui.hopstyle", "tui.session", "tui.screens", "tui.widgets"},
    "tui.session": {"model", "sim.cluster", "sim.proxy", "sim.trace", "sim.kernel", "sim.lab"},
    "tui.cli": {"model", "sim", "tui"},
}

# Libraries a layer must never load: the core runs without a terminal.
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    "model": {"textual", "rich"},
    "sim": {"textual", "rich"},
}


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from sim import proxy` imports sim.proxy, not the package sim.
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _rule_for(module: str) -> tuple[str, set[str]] | None:
    """The most specific package rule that covers `module`."""
    best: str | None = None
    for package in ALLOWED:
        if (module == package or module.startswith(package + ".")) and (
            best is None or len(package) > len(best)
        ):
            best = package
    return None if best is None else (best, ALLOWED[best])


def _within(imported: str, packages: set[str]) -> bool:
    return any(imported == p or imported.startswith(p + ".") for p in packages)


def _violations() -> list[str]:
    found: list[str] = []
    for top in ("model", "sim", "tui"):
        for path in sorted((ROOT / top).rglob("*.py")):
            module = _module_of(path)
            rule = _rule_for(module)
            for lineno, imported in _imports(path):
                root = imported.split(".")[0]
                where = f"{path.relative_to(ROOT)}:{lineno}: {module} imports {imported}"
                if root in FORBIDDEN_LIBRARIES.get(top, set()):
                    found.append(f"{where} (the core runs without a terminal)")
                if root not in ("model", "sim", "tui") or rule is None:
                    continue
                package, allowed = rule
                if _within(imported, {package}) or _within(imported, allowed):
                    continue
                found.append(f"{where} ({package} may import {sorted(allowed) or 'nothing'})")
    return found


def test_every_import_points_down_the_layers() -> None:
    assert _violations() == []


def test_the_table_covers_every_package() -> None:
    packages = {
        _module_of(p.parent / "__init__.py")
        for top in ("sim", "tui")
        for p in (ROOT / top).rglob("__init__.py")
        if p.parent not in (ROOT / "sim",)
    }
    uncovered = sorted(p for p in packages if _rule_for(p) is None)
    assert uncovered == []


@pytest.mark.parametrize(
    ("module", "line", "complaint"),
    [
        ("sim/kernel/walk.py", "from sim.proxy import rules_for", "sim.kernel may import"),
        ("sim/readers/ipset.py", "from sim.kernel.ipset import set_match", "sim.readers may"),
        ("tui/widgets/inspector.py", "from sim.kernel import conntrack", "tui.widgets may"),
        ("sim/trace/tracer.py", "import textual", "without a terminal"),
    ],
)
def test_a_wrong_way_import_is_caught(
    module: str, line: str, complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ROOT / module
    real = Path.read_text

    def with_extra_import(self: Path, *args: object, **kwargs: object) -> str:
        text = real(self, *args, **kwargs)  # type: ignore[arg-type]
        return text + f"\n{line}\n" if self == target else text

    monkeypatch.setattr(Path, "read_text", with_extra_import)
    assert any(complaint in v and module in v for v in _violations())


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


def test_every_hop_kind_has_a_symbol_in_text_and_on_screen() -> None:
    from model.trace import HopKind
    from sim.trace.report import SYMBOLS
    from tui import hopstyle

    assert set(SYMBOLS) == set(HopKind)
    assert set(hopstyle._KIND_BADGES) == set(HopKind)


# What the app's first screen must not load on a cluster in iptables mode (the demo):
# nftables' and IPVS's modules (and their walks') cost start-up and no packet there reaches them.
_NOT_ON_AN_IPTABLES_FIRST_SCREEN = (
    "model.nftables",
    "sim.kernel.nftables",
    "sim.proxy.nftables",
    "model.ipvs",
    "sim.kernel.ipvs",
    "sim.proxy.ipvs",
)


def test_the_first_screen_in_iptables_mode_loads_no_nftables_or_ipvs_module() -> None:
    code = (
        "import sys\n"
        "from tui.app import KubehopApp\n"
        "from tui.session import load_cluster, presets\n"
        "shown = []\n"
        "async def stop(pilot):\n"
        "    await pilot.pause()\n"
        "    shown.append(len(pilot.app.screen.trace.hops))\n"
        "    pilot.app.exit()\n"
        "cluster = load_cluster(None)\n"
        "KubehopApp(cluster, request=presets()[2].request, seed=7).run(\n"
        "    headless=True, size=(80, 24), auto_pilot=stop)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({_NOT_ON_AN_IPTABLES_FIRST_SCREEN}))\n"
        "print(cluster.kube_proxy.mode.value, shown[0] > 0, bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "iptables True []"
