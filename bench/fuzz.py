"""Run kubehop's property tests with many fresh random examples (on demand, never in CI).

    .venv/bin/python bench/fuzz.py [--examples N]

The suite runs each property on a fixed sample of 150 examples; this runs
the same properties (tests/readers/test_fuzz.py: the cluster loader and the
iptables-save reader) with N random examples each, and prints what pytest
prints, with hypothesis's shrunk counterexample if one fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="per property (default 5000)")
    args = parser.parse_args()
    env = {**os.environ, "KUBEHOP_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["tests/readers/test_fuzz.py", "-k", "mutated"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
