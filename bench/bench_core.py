"""Core benchmark at Kubernetes' documented scale limits. Run on demand, never in the tests:

    .venv/bin/python bench/bench_core.py [--nodes 5000 --pods 150000 --services 10000]

Every ratio compares like with like, measured in this one run:
- the same kind of request on both clusters: a pod to a ClusterIP Service none
  of whose endpoints is on the pod's node, so both traces cross the same places
  whichever endpoint the seed picks (not `--pick`: a pinned endpoint is looked
  up in the node's whole iptables-save text until `sim.proxy.dnats_to` asks the
  node's rules);
  times are per hop as well as per trace;
- cold = a fresh process that loads the cluster and traces once (the first
  trace pays for rendering the nodes it crosses); warm = repeats in a process
  that has traced once;
- the same garbage-collector policy on both sides of a ratio: kubehop's loader
  turns the collector off while it builds objects, so `json.loads` is timed
  with it off too;
- `iptables-restore --test` runs in a throwaway network namespace (`unshare -n`),
  only as root with iptables;
- a whole `kubehop trace` process on a generated dump (2,000 nodes, 60,000
  pods, 4,000 Services by default) against a Python process that `json.load`s
  the same file with the collector off, and the peak RSS of each;
- many random pod → ClusterIP traces in one process on a generated 500-node
  cluster (`--many`, 15,000 pods, 2,000 Services): peak RSS after the first
  trace and after all, and the median and 99th percentile of one trace.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.cluster import Cluster  # noqa: E402
from sim.cluster.generate import generate  # noqa: E402
from sim.cluster.load import demo_cluster, load  # noqa: E402
from sim.cluster.rules import node_rules  # noqa: E402
from sim.proxy.iptables import render_node_rules  # noqa: E402
from sim.proxy.iptables.names import _hash16  # noqa: E402
from sim.trace.request import Request  # noqa: E402
from sim.trace.tracer import trace  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The fastest of `runs` timings of `fn`, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def generated(nodes: int, pods: int, services: int) -> Path:
    """A generated cluster file, made once and kept under bench/.cache."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"cluster-{nodes}-{pods}-{services}.json"
    if not path.exists():
        start = time.perf_counter()
        path.write_text(generate(nodes, pods, services, seed=1))
        print(f"generated {path.name} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return path


def request_like_the_demos(cluster: Cluster) -> Request:
    """A pod to a ClusterIP Service none of whose endpoints is on the pod's node."""
    pods = {p.ip: p for p in cluster.pods if not p.host_network}
    for svc in cluster.services:
        if svc.cluster_ip is None or svc.type.value != "ClusterIP" or not svc.ports:
            continue
        endpoints = {ep.ip for s in cluster.slices_of(svc) for ep in s.endpoints if ep.ready}
        servers = [pods[ip] for ip in endpoints if ip in pods]
        if not servers or len(servers) != len(endpoints):
            continue
        on = {p.node for p in servers}
        client = next((p for p in pods.values() if p.node not in on), None)
        if client is not None:
            return Request(client.key, f"{svc.cluster_ip}:{svc.ports[0].port}", seed=1)
    raise SystemExit("no Service whose endpoints are all on other nodes than some pod")


_COLD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from sim.cluster.indexes import prepare
from sim.cluster.load import demo_cluster, load, with_dataplane
from sim.trace.request import Request
from sim.trace.tracer import trace
# load() indexes what traces ask for; the demo is indexed the same way, so both sides
# start from a loaded, indexed cluster.
cluster = load(sys.argv[2]) if sys.argv[2] else demo_cluster()
cluster = prepare(with_dataplane(cluster, mode=sys.argv[6] or None, cni=sys.argv[7] or None))
request = Request(sys.argv[3], sys.argv[4], seed=1, pick=sys.argv[5] or None)
start = time.perf_counter()
hops = len(trace(cluster, request).hops)
print(time.perf_counter() - start, hops)
"""

DATAPLANES: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("nftables", ""),
    ("ipvs", ""),
    ("", "flannel-vxlan"),
    ("", "calico-vxlan"),
)
"""(kube-proxy mode, CNI) whose cold first trace is measured ("" = the cluster's own)."""


def cold_trace(
    path: Path | None, request: Request, mode: str = "", cni: str = ""
) -> tuple[float, int]:
    """The first trace in a fresh process that has just loaded the cluster: seconds, hops."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _COLD,
            str(ROOT),
            str(path or ""),
            request.source,
            request.destination,
            request.pick or "",
            mode,
            cni,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, hops = out.stdout.split()
    return float(seconds), int(hops)


def cold_ratio(
    path: Path, big: Request, demo: Request, mode: str = "", cni: str = "", rounds: int = 3
) -> tuple[float, float, int, int]:
    """Medians of `rounds` cold first traces, big and demo alternating: seconds and hops each."""
    bigs: list[float] = []
    demos: list[float] = []
    hops = (0, 0)
    for _ in range(rounds):
        big_s, big_hops = cold_trace(path, big, mode, cni)
        demo_s, demo_hops = cold_trace(None, demo, mode, cni)
        bigs.append(big_s)
        demos.append(demo_s)
        hops = (big_hops, demo_hops)
    return statistics.median(bigs), statistics.median(demos), hops[0], hops[1]


def warm_trace(cluster: Cluster, request: Request) -> tuple[float, int]:
    """Repeats of a trace already traced once in this process: seconds, hops."""
    hops = len(trace(cluster, request).hops)
    return best_of(20, lambda: trace(cluster, request)), hops


def json_loads_gc_off(text: str) -> float:
    """`json.loads` with the collector off, as kubehop's loader builds with it off."""

    def parse() -> None:
        gc.disable()
        try:
            json.loads(text)
        finally:
            gc.enable()

    return best_of(3, parse)


def restore_test_time(text: str) -> float | None:
    """`iptables-restore --test` of `text` in a throwaway network namespace."""
    if os.geteuid() != 0 or not (shutil.which("iptables-restore") and shutil.which("unshare")):
        return None

    def run() -> None:
        subprocess.run(
            ["unshare", "-n", "iptables-restore", "--test"],
            input=text.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    return best_of(3, run)


def mode_checks(cluster: Cluster, node: str) -> list[tuple[str, str]]:
    """nftables and IPVS mode: rendering a node's whole rules (cold) ÷ the kernel's tools
    checking or loading the same text in a throwaway network namespace (root only).

    nftables: `nft -c -f` of the transaction kube-proxy hands nft. IPVS: `ipset restore` of
    kube-proxy's sets, then `iptables-restore --test` of its rules (which match the sets);
    `ipvsadm -R` of its virtual servers needs the ip_vs module, which a kernel may lack.
    """
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nft", "ipset")):
        return [("mode checks", "skipped: needs root, unshare, nft and ipset")]
    from sim.cluster.load import with_mode
    from sim.proxy.ipvs.save import iptables_save, listings_of
    from sim.proxy.ipvs.sync import sync as ipvs_sync
    from sim.proxy.nftables import render_node_transaction

    rows: list[tuple[str, str]] = []
    nft_cluster = with_mode(cluster, "nftables")
    start = time.perf_counter()
    transaction = render_node_transaction(nft_cluster, node)
    render = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        ["unshare", "-n", "nft", "-c", "-f", "-"], input=transaction.encode(), check=True
    )
    checked = time.perf_counter() - start
    rows.append(
        (
            "nftables: render one node's transaction ÷ `nft -c -f` of it",
            f"{render:.2f} s ÷ {checked:.1f} s = {render / checked:.3f}"
            f" ({transaction.count(chr(10)):,} commands)",
        )
    )
    ipvs_cluster = with_mode(cluster, "ipvs")
    start = time.perf_counter()
    found = ipvs_cluster.node(node)
    assert found is not None
    synced = ipvs_sync(ipvs_cluster, found)
    rules = iptables_save(synced, None)
    listed = {item.command: item.text for item in listings_of(ipvs_cluster, node, synced, rules)}
    render = time.perf_counter() - start
    script = 'ipset restore < "$1" && iptables-restore --test < "$2"'
    with tempfile.TemporaryDirectory() as scratch:
        sets, chains = Path(scratch, "sets"), Path(scratch, "rules")
        sets.write_text(listed["ipset save"])
        chains.write_text(listed["iptables-save"])
        start = time.perf_counter()
        subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", sets, chains], check=True)
        loaded = time.perf_counter() - start
    rows.append(
        (
            "IPVS: render one node (every listing) ÷ `ipset restore` + `iptables-restore --test`",
            f"{render:.2f} s ÷ {loaded:.2f} s = {render / loaded:.1f}"
            f" ({listed['ipvsadm-save -n'].count(chr(10)):,} ipvsadm-save lines not loadable"
            " without ip_vs)",
        )
    )
    return rows


# A child's ru_maxrss starts from its parent's peak (Linux keeps it across fork and
# exec), so a process reports its own peak from VmHWM, which exec resets.
_PEAK = """
def peak_rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc/self/status")
"""

_MEASURED = (
    _PEAK
    + """
import runpy, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[2:]
code = 0
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code or 0
print(time.perf_counter() - start, peak_rss(), code, file=sys.stderr)
"""
)


_MANY = (
    _PEAK
    + """
import random, sys, time
sys.path.insert(0, sys.argv[1])
from sim.cluster.load import load
from sim.trace.request import Request
from sim.trace.tracer import trace
cluster = load(sys.argv[2])
rng = random.Random(1)
pods = [p for p in cluster.pods if not p.host_network]
services = [s for s in cluster.services if s.cluster_ip is not None and s.ports]
times = []
for i in range(int(sys.argv[3])):
    pod, svc = rng.choice(pods), rng.choice(services)
    request = Request(pod.key, f"{svc.cluster_ip}:{svc.ports[0].port}", seed=i)
    start = time.perf_counter()
    trace(cluster, request)
    times.append(time.perf_counter() - start)
    if i == 0:
        first = peak_rss()
times.sort()
print(first, peak_rss(), times[len(times) // 2], times[int(len(times) * 0.99)])
"""
)


def many_traces(path: Path, count: int) -> tuple[int, int, float, float]:
    """Random pod → ClusterIP traces in one fresh process: peak RSS after the first and after
    all (bytes), median and 99th percentile of one trace (seconds)."""
    out = subprocess.run(
        [sys.executable, "-c", _MANY, str(ROOT), str(path), str(count)],
        check=True,
        capture_output=True,
        text=True,
    )
    first, rss, p50, p99 = out.stdout.split()
    return int(first), int(rss), float(p50), float(p99)


def measured_process(*argv: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of `python -m ARGV…` in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(ROOT), *argv],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    seconds, rss, _ = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000, help="big cluster (default 5000)")
    parser.add_argument("--pods", type=int, default=150000, help="big cluster (default 150000)")
    parser.add_argument("--services", type=int, default=10000, help="big cluster (default 10000)")
    parser.add_argument(
        "--process",
        default="2000,60000,4000",
        help="nodes,pods,services of the whole-process comparison (default 2000,60000,4000)",
    )
    parser.add_argument(
        "--many",
        type=int,
        default=1000,
        help="random traces on a generated 500-node cluster (default 1000; 0 skips them)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="cold first traces per side and dataplane, median taken (default 3)",
    )
    parser.add_argument(
        "--mode-checks",
        action="store_true",
        help="also render a node in nftables and IPVS mode against nft -c -f, ipset restore and"
        " iptables-restore --test of the same (root; nft -c alone takes minutes)",
    )
    args = parser.parse_args()

    path = generated(args.nodes, args.pods, args.services)
    text = path.read_text()
    size = path.stat().st_size
    json_s = json_loads_gc_off(text)
    load_s = best_of(2, lambda: load(path))
    big = load(path)
    demo = demo_cluster()
    demo_request = request_like_the_demos(demo)
    big_request = request_like_the_demos(big)

    colds = {
        plane: cold_ratio(path, big_request, demo_request, *plane, rounds=args.rounds)
        for plane in DATAPLANES
    }
    big_cold, demo_cold, big_hops, demo_hops = colds[DATAPLANES[0]]
    demo_warm, _ = warm_trace(demo, demo_request)
    big_warm, _ = warm_trace(big, big_request)

    node = big_request.source and next(p.node for p in big.pods if p.key == big_request.source)

    def render_cold() -> str:
        # Chain-name hashes are cached across renders of one process; a
        # benchmark of one node's render starts without them.
        _hash16.cache_clear()
        return render_node_rules(big, node)

    render_s = best_of(3, render_cold)
    rules_text = node_rules(big, node).text
    restore_s = restore_test_time(rules_text)
    load_process_s, load_rss = measured_process("bench.load_only", str(path))

    nodes, pods, services = (int(n) for n in args.process.split(","))
    mid = generated(nodes, pods, services)
    mid_cluster = load(mid)
    mid_request = request_like_the_demos(mid_cluster)
    del mid_cluster
    trace_argv = ["tui.cli", "--cluster", str(mid), "trace", mid_request.source]
    trace_argv += [mid_request.destination, "--seed", "1"]
    trace_process_s, trace_rss = measured_process(*trace_argv)
    json_process_s, _ = measured_process("bench.json_only", str(mid))
    mid_size = mid.stat().st_size

    rows = [
        (
            "big cluster",
            f"{args.nodes} nodes, {args.pods} pods, {args.services} Services,"
            f" {size / 1e6:.0f} MB JSON, {rules_text.count(chr(10) + '-A ')} rules on {node}",
        ),
        ("the request", f"demo: {demo_request.command}; big: {big_request.command}"),
        (
            "first trace after load (cold), big ÷ demo",
            f"{big_cold:.3f} s ÷ {demo_cold * 1e3:.1f} ms = {big_cold / demo_cold:.1f}"
            f" ({big_hops} and {demo_hops} hops; per hop"
            f" {(big_cold / big_hops) / (demo_cold / demo_hops):.0f})",
        ),
        *(
            (
                f"  the same with {' and '.join(p for p in plane if p)}",
                f"{big:.3f} s ÷ {demo * 1e3:.1f} ms = {big / demo:.1f} ({bh} and {dh} hops)",
            )
            for plane, (big, demo, bh, dh) in colds.items()
            if any(plane)
        ),
        (
            "warm trace per hop, big ÷ demo",
            f"{big_warm / big_hops * 1e6:.0f} µs ÷ {demo_warm / demo_hops * 1e6:.0f} µs ="
            f" {(big_warm / big_hops) / (demo_warm / demo_hops):.2f}",
        ),
        (
            "load ÷ json.loads (collector off on both sides)",
            f"{load_s:.2f} s ÷ {json_s:.2f} s = {load_s / json_s:.2f}",
        ),
        (
            "peak RSS of a process that loads the big file ÷ file size",
            f"{load_rss / 1e6:.0f} MB ÷ {size / 1e6:.0f} MB = {load_rss / size:.1f}"
            f" ({load_process_s:.1f} s)",
        ),
        (
            "render one node's rules ÷ iptables-restore --test",
            f"{render_s:.2f} s ÷ {restore_s:.2f} s = {render_s / restore_s:.2f}"
            if restore_s
            else f"{render_s:.2f} s ÷ n/a (needs root and iptables)",
        ),
        (
            f"kubehop trace process ({nodes}/{pods}/{services}) ÷ json.load process",
            f"{trace_process_s:.1f} s ÷ {json_process_s:.1f} s ="
            f" {trace_process_s / json_process_s:.1f}",
        ),
        (
            "peak RSS of that kubehop trace process ÷ file size",
            f"{trace_rss / 1e6:.0f} MB ÷ {mid_size / 1e6:.0f} MB = {trace_rss / mid_size:.1f}",
        ),
    ]
    if args.many:
        many = generated(500, 15000, 2000)
        first, rss, p50, p99 = many_traces(many, args.many)
        rows.append(
            (
                f"{args.many} random traces, 500 nodes/15000 pods/2000 Services",
                f"peak RSS {first / 1e6:.0f} MB after the first, {rss / 1e6:.0f} MB after all;"
                f" one trace p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms",
            )
        )
    if args.mode_checks:
        rows.extend(mode_checks(big, node))
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
