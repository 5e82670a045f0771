"""Loading a big cluster file against json.loads of it: time and peak memory (on demand).

    .venv/bin/python bench/bench_load.py [FILE] [--rounds 5] [--trace FILE]

Rounds alternate the two sides, so that the load on the machine falls on both
alike:
- in one process, `json.loads` of the file's text and kubehop's load of the
  file, in turn, both with the collector off (kubehop's loader turns it off),
  as bench_core.py times them: wall and CPU time;
- in fresh processes, `python -m bench.json_only FILE` and `python -m
  bench.load_only FILE`: wall time and peak RSS of each;
- with `--trace FILE` (a `kubehop gen --nodes 2000 --pods 60000 --services
  4000` dump), a whole `kubehop trace` process on it against `bench.json_only`.

It prints each round and the median of each ratio. FILE defaults to the
cluster bench_core.py generates at Kubernetes' scale limits.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The peak is VmHWM, the high-water mark of this process's own memory: Linux
# carries ru_maxrss over from the parent through fork and exec (a child of a
# 300 MB parent reports 297 MB, measured), and this script's parent is big.
_MEASURED = """
import runpy, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[2:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(seconds, peak, file=sys.stderr)
"""

_IN_PROCESS = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from sim.cluster.load import load
import sim.readers.cluster
text = open(sys.argv[2], encoding="utf-8").read()

def parse():
    # As bench_core times it: collector off, the tree freed inside the timing.
    gc.disable()
    try:
        json.loads(text)
    finally:
        gc.enable()

for _ in range(int(sys.argv[3])):
    times = []
    for run in (parse, lambda: load(sys.argv[2])):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        times += [time.perf_counter() - wall, time.process_time() - cpu]
    print(*times, flush=True)
"""


def measured(*argv: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of `python -m ARGV…` in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(ROOT), *argv],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, rss = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def in_process(path: Path, rounds: int) -> list[tuple[float, float, float, float]]:
    """(json.loads wall, CPU, load wall, CPU) seconds of each round, alternating in one process."""
    out = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, str(ROOT), str(path), str(rounds)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return [
        (float(a), float(b), float(c), float(d))
        for a, b, c, d in (line.split() for line in out.stdout.splitlines())
    ]


def trace_argv(path: Path) -> list[str]:
    """A `kubehop trace` of one pod to another node's ClusterIP Service, as bench_core's."""
    sys.path.insert(0, str(ROOT))
    from bench.bench_core import request_like_the_demos
    from sim.cluster.load import load

    request = request_like_the_demos(load(path))
    argv = ["tui.cli", "--cluster", str(path), "trace", request.source, request.destination]
    return [*argv, "--seed", "1", "--pick", request.pick or ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trace", type=Path, default=None, help="a mid-sized dump to trace")
    args = parser.parse_args()
    path = args.file or ROOT / "bench" / ".cache" / "cluster-5000-150000-10000.json"
    size = path.stat().st_size
    traced = trace_argv(args.trace) if args.trace else None
    rows: list[dict[str, float]] = []
    for parsed, parsed_cpu, loaded, loaded_cpu in in_process(path, args.rounds):
        print(
            f"json.loads {parsed:.2f} s ({parsed_cpu:.2f} s CPU),"
            f" load {loaded:.2f} s ({loaded_cpu:.2f} s CPU)",
            flush=True,
        )
        rows.append(
            {
                "load ÷ json.loads (wall)": loaded / parsed,
                "load ÷ json.loads (CPU)": loaded_cpu / parsed_cpu,
            }
        )
    for round_, row in enumerate(rows):
        json_s, json_rss = measured("bench.json_only", str(path))
        load_s, load_rss = measured("bench.load_only", str(path))
        row["load process ÷ json.load process"] = load_s / json_s
        row["load process peak RSS ÷ file"] = load_rss / size
        row["json.load process peak RSS ÷ file"] = json_rss / size
        line = (
            f"round {round_ + 1}: processes {json_s:.2f} s / {load_s:.2f} s,"
            f" peak RSS {json_rss / 1e6:.0f} MB / {load_rss / 1e6:.0f} MB"
        )
        if traced is not None and args.trace is not None:
            base_s, _ = measured("bench.json_only", str(args.trace))
            trace_s, trace_rss = measured(*traced)
            row["trace process ÷ json.load process"] = trace_s / base_s
            row["trace process peak RSS ÷ file"] = trace_rss / args.trace.stat().st_size
            line += f"; trace {trace_s:.2f} s ÷ {base_s:.2f} s, {trace_rss / 1e6:.0f} MB"
        print(line, flush=True)
    print(f"\n{path.name}: {size / 1e6:.0f} MB; medians of {args.rounds} rounds")
    for name in rows[0]:
        print(f"  {name:<36} {statistics.median(r[name] for r in rows):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
