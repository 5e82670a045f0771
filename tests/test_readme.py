"""The README's example output is what kubehop prints."""

from __future__ import annotations

from pathlib import Path

from sim.cluster_io import demo_cluster
from sim.report import trace_text
from sim.tracer import trace

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_trace_excerpt_matches_the_real_output() -> None:
    text = README.read_text()
    start = text.index("$ kubehop trace pod1 svc-b:80 --seed 2\n")
    block = text[start : text.index("```", start)].splitlines()[1:]
    excerpt = [line for line in block if line.strip() and line.strip() != "…"]
    assert excerpt, "the README lost its trace excerpt"
    output = trace_text(trace(demo_cluster(), "pod1", "svc-b:80", seed=2)).splitlines()
    for line in excerpt:
        assert line in output, f"README line not in `kubehop trace pod1 svc-b:80 --seed 2`: {line}"
