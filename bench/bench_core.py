"""Core benchmark at Kubernetes' documented scale limits. Run on demand, never in the tests:

    .venv/bin/python bench/bench_core.py [--nodes 5000 --pods 150000 --services 10000]

Prints, measured in this one run:
- trace on the big cluster ÷ trace on the demo (target ≤ 2), rules already rendered;
- load of the big file ÷ json.loads of it (target ≤ 3);
- rendering one node's rules ÷ `iptables-restore --test` of the same text (target ≤ 0.5;
  only as root with iptables, inside a throwaway kh- netns, never the root one);
- peak RSS of a process that loads the file ÷ the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sim.trace.request import Request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.cluster import Cluster
from sim.cluster.generate import generate
from sim.cluster.load import demo_cluster, load
from sim.cluster.rules import node_rules
from sim.proxy.iptables import render_node_rules
from sim.proxy.iptables.names import _hash16
from sim.trace.tracer import trace

CACHE = Path(__file__).resolve().parent / ".cache"


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The fastest of `runs` timings of `fn`, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def big_file(nodes: int, pods: int, services: int) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"cluster-{nodes}-{pods}-{services}.json"
    if not path.exists():
        start = time.perf_counter()
        path.write_text(generate(nodes, pods, services, seed=1))
        print(f"generated {path.name} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return path


def flow_of(cluster: Cluster) -> tuple[str, str]:
    """A pod and a ClusterIP Service with endpoints, to trace."""
    pod = cluster.pods[0]
    for svc in cluster.services:
        if svc.cluster_ip is not None and cluster.slices_of(svc):
            return pod.key, f"{svc.cluster_ip}:{svc.ports[0].port}"
    raise SystemExit("no Service with endpoints in the generated cluster")


def trace_time(cluster: Cluster, source: str, destination: str) -> float:
    trace(cluster, Request(source, destination, seed=1))  # renders and parses the nodes involved
    return best_of(20, lambda: trace(cluster, Request(source, destination, seed=1)))


def restore_test_time(text: str) -> float | None:
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None or shutil.which("ip") is None:
        return None
    ns = f"kh-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:

        def run() -> None:
            subprocess.run(
                ["ip", "netns", "exec", ns, "iptables-restore", "--test"],
                input=text.encode(),
                check=True,
                stdout=subprocess.DEVNULL,
            )

        return best_of(3, run)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def peak_rss_of_load(path: Path) -> int:
    code = (
        "import resource,sys; sys.path.insert(0, sys.argv[2]);"
        "from sim.cluster.load import load; load(sys.argv[1]);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), root], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip()) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150000)
    parser.add_argument("--services", type=int, default=10000)
    args = parser.parse_args()

    path = big_file(args.nodes, args.pods, args.services)
    text = path.read_text()
    json_s = best_of(3, lambda: json.loads(text))
    load_s = best_of(2, lambda: load(path))
    big = load(path)

    demo = demo_cluster()
    demo_s = trace_time(demo, "pod1", "10.101.100.102:80")
    src, dst = flow_of(big)
    big_s = trace_time(big, src, dst)

    node = big.pods[0].node

    def render_cold() -> str:
        # Chain-name hashes are cached across renders of one process; a
        # benchmark of one node's render starts without them.
        _hash16.cache_clear()
        return render_node_rules(big, node)

    render_s = best_of(3, render_cold)
    rules_text = node_rules(big, node).text
    restore_s = restore_test_time(rules_text)
    rss = peak_rss_of_load(path)
    size = path.stat().st_size
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    rows = [
        (
            "cluster",
            f"{args.nodes} nodes, {args.pods} pods, {args.services} Services, "
            f"{size / 1e6:.0f} MB JSON, {rules_text.count(chr(10) + '-A ')} rules on {node}",
        ),
        (
            "trace big ÷ trace demo",
            f"{big_s * 1e3:.2f} ms ÷ {demo_s * 1e3:.2f} ms = {big_s / demo_s:.2f} (target ≤ 2)",
        ),
        (
            "load ÷ json.loads",
            f"{load_s:.2f} s ÷ {json_s:.2f} s = {load_s / json_s:.2f} (target ≤ 3)",
        ),
        (
            "render ÷ iptables-restore --test",
            f"{render_s:.2f} s ÷ {restore_s:.2f} s = {render_s / restore_s:.2f} (target ≤ 0.5)"
            if restore_s
            else f"{render_s:.2f} s ÷ n/a (needs root and iptables)",
        ),
        (
            "peak RSS of a load ÷ file size",
            f"{rss / 1e6:.0f} MB ÷ {size / 1e6:.0f} MB = {rss / size:.1f}",
        ),
        ("this process's peak RSS", f"{usage / 1e6:.0f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
