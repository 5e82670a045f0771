"""The README's example output is what kubehop prints."""

from __future__ import annotations

from sim.cluster.load import demo_cluster
from sim.trace.report import trace_text
from sim.trace.request import Request
from sim.trace.tracer import trace
from tests import paths

README = paths.ROOT / "README.md"


def test_the_readme_trace_excerpt_matches_the_real_output() -> None:
    text = README.read_text()
    start = text.index("$ kubehop trace pod1 svc-b:80 --seed 2\n")
    block = text[start : text.index("```", start)].splitlines()[1:]
    excerpt = [line for line in block if line.strip() and line.strip() != "…"]
    assert excerpt, "the README lost its trace excerpt"
    output = trace_text(trace(demo_cluster(), Request("pod1", "svc-b:80", seed=2))).splitlines()
    for line in excerpt:
        assert line in output, f"README line not in `kubehop trace pod1 svc-b:80 --seed 2`: {line}"
