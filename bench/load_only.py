"""`python -m bench.load_only FILE`: load a cluster file and exit (bench_core measures its RSS)."""

from __future__ import annotations

import sys

from sim.cluster.load import load

load(sys.argv[1])
