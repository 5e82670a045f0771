"""`python -m bench.json_only FILE`: `json.load` a file with the collector off, and exit.

The baseline of bench_core's whole-process ratio: the least any reader of the
file must do, under the same collector policy as kubehop's loader.
"""

from __future__ import annotations

import gc
import json
import sys

gc.disable()
with open(sys.argv[1], encoding="utf-8") as file:
    json.load(file)
