"""The app's two benchmarks from issue 3, measured in one run (on demand, not a test).

    .venv/bin/python bench/bench_tui.py                      # Kubernetes' scale limits
    .venv/bin/python bench/bench_tui.py --nodes 500 --pods 15000 --services 1000

1. Start-up: process start → first complete screen → exit, headless at 80×24,
   for kubehop on the demo cluster (showing the trace of scenario 3) ÷ for a
   bare Textual app (Header, one Static, Footer). The two alternate, and each
   takes the median of several runs. Bytecode is cached (in bench/.cache/pycache,
   after one warm-up run each), as it is for an installed kubehop: without it,
   every run would compile kubehop's 50 modules and the bare app none.
   Target ≤ 1.4. Two floors are measured with them, to show where that budget
   goes: the bare app importing pydantic for one model, and the bare app showing
   the demo cluster loaded through model/ (pydantic, as the design asks), both
   importing as kubehop does (the collector off meanwhile, the demo from JSON).
2. Latency, on the big cluster ÷ on the demo cluster, in each kube-proxy mode
   (`--modes`): the trace on screen after opening (target ≤ 3); pressing `n`
   until the screen has refreshed, averaged over stepping through a whole trace
   (target ≤ 1.5); pressing `o` until another node's rules are on show, the mean
   of three nodes (target ≤ 3). The big cluster file is bench_core.py's, reused
   from bench/.cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = Path(__file__).resolve().parent / ".cache"

if TYPE_CHECKING:
    from model.cluster import Cluster

_STOP = """
async def stop(pilot):
    await pilot.pause()
    pilot.app.exit()
"""


def _bare_app(setup: str, shown: str, *, quiet_gc: bool = False) -> str:
    """A Header, one Static showing `shown` (after `setup`), a Footer: the baseline app.

    With `quiet_gc`, everything is imported as kubehop's app imports it: with
    the cyclic collector off, then frozen.
    """
    off, on = ("import gc\ngc.disable()", "gc.freeze()\ngc.enable()") if quiet_gc else ("", "")
    return f"""
import sys
sys.path.insert(0, sys.argv[1])
{off}
from textual.app import App
from textual.widgets import Footer, Header, Static
{setup}
{on}
class Bare(App[None]):
    def compose(self):
        yield Header()
        yield Static({shown})
        yield Footer()
{_STOP}
Bare().run(headless=True, size=(80, 24), auto_pilot=stop)
"""


_BARE = _bare_app("", '"hello"')

# The floors import as kubehop does (tui/app.py): with the cyclic collector off,
# then frozen; the demo cluster is read from its JSON copy.
_PYDANTIC = _bare_app(
    "from pydantic import BaseModel\nclass Greeting(BaseModel):\n    text: str\n",
    'Greeting(text="hello").text',
    quiet_gc=True,
)
_DEMO_MODEL = _bare_app(
    "from sim.cluster.load import demo_cluster\n",
    'f"{len(demo_cluster().pods)} pods"',
    quiet_gc=True,
)

# As `kubehop` starts: the app's module first, then the cluster.
_KUBEHOP = (
    """
import sys
sys.path.insert(0, sys.argv[1])
from tui.app import KubehopApp
from tui.session import load_cluster, presets
"""
    + _STOP
    + """
KubehopApp(load_cluster(None), request=presets()[2].request, seed=7).run(
    headless=True, size=(80, 24), auto_pilot=stop
)
"""
)


def startup(
    scripts: tuple[str, ...], runs: int, roots: tuple[Path, ...] = ()
) -> tuple[list[float], ...]:
    """Wall times of `runs` fresh processes running each of `scripts`, alternating.

    Each script runs on this checkout, or on the matching one of `roots` (a
    checkout to compare with, measured in the same run).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    times: list[list[float]] = [[] for _ in scripts]
    where = [*roots, *[ROOT] * (len(scripts) - len(roots))][: len(scripts)]
    for run in range(runs + 1):
        for script, root, measured in zip(scripts, where, times, strict=True):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", script, str(root)], check=True, env=env)
            if run:  # the first run of each writes the bytecode cache
                measured.append(time.perf_counter() - start)
    return tuple(times)


def ratio(times: list[float], bare: list[float]) -> float:
    """The median of each round's ratio: on a shared machine the load changes from
    round to round more than within one (the scripts of a round run back to back)."""
    return statistics.median(t / b for t, b in zip(times, bare, strict=True))


@dataclass(frozen=True)
class Latency:
    """What a user waits for on one cluster, in seconds."""

    open: float
    """From creating the app to the first frame of its screen written out."""
    shown: float
    """From creating the app to the first frame written out with the trace on the screen
    (on a big cluster, traced in a worker)."""
    busy: float
    """Press n just after the trace is drawn: the screen refreshed (on a big cluster, while
    the rules pane renders the node's whole table in a worker)."""
    traced: float
    """From creating the app to every worker done: the trace on show and the rules pane's
    whole table of the node (rendered in a worker, the pane saying so meanwhile)."""
    step: float
    """Mean of: press n, the screen refreshed, over one whole trace."""
    switch: float
    """Mean time the event loop is busy after o (the next node's rules)."""
    switched: float
    """Mean of: press o, the node's rules on show (on a big cluster, rendered in a worker)."""


async def latency(cluster: Cluster, source: str, destination: str) -> Latency:
    """Open the app on `cluster` at 160×48, step through a whole trace, switch node."""
    from textual.screen import Screen

    from tui.app import KubehopApp
    from tui.screens.trace import TraceScreen
    from tui.session import Request

    start = time.perf_counter()
    app = KubehopApp(cluster, request=Request(source, destination), seed=7)
    # The first frame written out with the trace on the screen: what a person sees
    # (App._display is where a headless app's frames go; waiting for the app to be
    # idle would wait for the rules pane's worker too).
    first: list[float] = []
    painted: list[float] = []
    frames: list[tuple[float, int]] = []
    display = app._display

    def timed_display(screen: Screen[Any], update: Any) -> None:
        display(screen, update)
        if not first and isinstance(screen, TraceScreen):
            first.append(time.perf_counter() - start)
        if not painted and isinstance(screen, TraceScreen) and screen.trace is not None:
            painted.append(time.perf_counter() - start)
        if isinstance(screen, TraceScreen):
            frames.append((time.perf_counter(), screen.index))

    app._display = timed_display  # type: ignore[method-assign,assignment]
    async with app.run_test(size=(160, 48)) as pilot:
        while not painted:
            await asyncio.sleep(0.002)
        opened, shown = first[0], painted[0]
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        # The rules pane renders the node's whole table once the trace is drawn; a key
        # pressed meanwhile waits for the interpreter the render holds.
        # (Pilot.pause would wait for the worker: the frame showing the next hop is timed.)
        pressed = time.perf_counter()
        await pilot.press("n")
        while not any(t > pressed and index == 1 for t, index in frames):
            await asyncio.sleep(0.002)
        busy = next(t for t, index in frames if t > pressed and index == 1) - pressed
        while str(screen.rules_pane.border_subtitle).startswith("rendering"):
            await app.workers.wait_for_complete()
            await pilot.pause()
        traced = time.perf_counter() - start
        assert isinstance(screen, TraceScreen) and screen.trace is not None
        # The trace rendered the rules of the nodes it passes; stepping shows them.
        steps = []
        for _ in range(len(screen.trace.hops) - 2):
            start = time.perf_counter()
            await pilot.press("n")
            await pilot.pause()
            steps.append(time.perf_counter() - start)
        # Switching node renders a node's rules the first time: that is measured.
        switches, switched = [], []
        for _ in range(3):
            # The handler's own time: while a worker renders, Pilot.pause waits for
            # the CPU to go idle, which measures the worker, not the screen.
            start = time.perf_counter()
            await screen.action_switch_node()
            switches.append(time.perf_counter() - start)
            # The render starts once the screen is drawn; on show when the pane no
            # longer says it is rendering.
            await pilot.pause()
            while str(screen.rules_pane.border_subtitle).startswith("rendering"):
                await app.workers.wait_for_complete()
                await pilot.pause()
            switched.append(time.perf_counter() - start)
        return Latency(
            opened,
            shown,
            busy,
            traced,
            statistics.mean(steps),
            statistics.mean(switches),
            statistics.mean(switched),
        )


def big_file(nodes: int, pods: int, services: int) -> Path:
    """The generated cluster of this size, as bench_core.py caches it (made if missing)."""
    from sim.cluster.generate import generate

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"cluster-{nodes}-{pods}-{services}.json"
    if not path.exists():
        path.write_text(generate(nodes, pods, services, seed=1), encoding="utf-8")
    return path


def big_flow(cluster: Cluster) -> tuple[str, str]:
    """A pod and a ClusterIP Service with endpoints, to trace between."""
    pod = cluster.pods[0]
    for service in cluster.services:
        if service.cluster_ip is not None and cluster.slices_of(service):
            return pod.key, f"{service.cluster_ip}:{service.ports[0].port}"
    raise SystemExit("no Service with endpoints in the generated cluster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--startup-only", action="store_true", help="measure start-up only (about a minute)"
    )
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        type=Path,
        action="append",
        default=[],
        help="another checkout of kubehop (say, before a change) whose start-up is measured "
        "in the same run; repeat for several",
    )
    parser.add_argument(
        "--modes",
        default="iptables,nftables,ipvs",
        help="the kube-proxy modes the app's latency is measured in (comma-separated; the big "
        "cluster is loaded once per mode)",
    )
    args = parser.parse_args()

    others: tuple[Path, ...] = tuple(p.resolve() for p in args.compare)
    times = startup(
        (*(_KUBEHOP for _ in others), _BARE, _PYDANTIC, _DEMO_MODEL, _KUBEHOP), args.runs, others
    )
    bare, pydantic, model, kubehop = times[len(others) :]

    def ms(measured: list[float]) -> str:
        return f"{statistics.median(measured) * 1000:7.0f} ms"

    print(f"start-up  bare textual {ms(bare)}   (medians; ratios: the median of each round's)")
    print(f"start-up  + pydantic   {ms(pydantic)}  ×{ratio(pydantic, bare):.2f}  (floor)")
    print(f"start-up  + demo model {ms(model)}  ×{ratio(model, bare):.2f}  (floor)")
    for other, took in zip(others, times, strict=False):
        print(f"start-up  kubehop demo {ms(took)}  ×{ratio(took, bare):.2f}  ({other})")
    print(f"start-up  kubehop demo {ms(kubehop)}")
    print(f"start-up ratio          {ratio(kubehop, bare):7.2f}  (target ≤ 1.4)")
    if args.startup_only:
        return

    from sim.cluster.load import demo_cluster, load, with_mode

    for mode in args.modes.split(","):
        start = time.perf_counter()
        cluster = load(big_file(args.nodes, args.pods, args.services), mode=mode)
        print(
            f"{mode}: big cluster: {args.nodes} nodes, {args.pods} pods, {args.services} "
            f"services, loaded in {time.perf_counter() - start:.1f} s"
        )
        demo = asyncio.run(latency(with_mode(demo_cluster(), mode), "pod1", "svc-b:80"))
        large = asyncio.run(latency(cluster, *big_flow(cluster)))
        for name in ("open", "shown", "busy", "traced", "step", "switch", "switched"):
            small, big = getattr(demo, name), getattr(large, name)
            print(
                f"{mode:<9}{name:<8} demo {small * 1000:8.1f} ms   big {big * 1000:9.1f} ms"
                f"   ×{big / small:.2f}"
            )
        print(f"{mode:<9}shown ratio     {large.shown / demo.shown:7.2f}  (target ≤ 3)")
        print(f"{mode:<9}switched ratio  {large.switched / demo.switched:7.2f}  (target ≤ 3)")
        print(f"{mode:<9}step ratio      {large.step / demo.step:7.2f}  (target ≤ 1.5)")


if __name__ == "__main__":
    main()
