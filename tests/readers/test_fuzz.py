"""Whatever a cluster file or a node's rules hold, reading them ends in a result or one error.

Property tests: mutated copies of the demo cluster (any value replaced by a
mapping, a list, a number, a string, null or a boolean) and of a rendered
node's iptables-save text. The reader may refuse them, with a
`KubehopError` (one line, exit 2), or load them; it never raises anything
else. The suite runs a fixed, quick sample; `bench/fuzz.py` runs the same
properties with fresh random examples for as long as asked.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.errors import KubehopError
from sim.cluster.load import demo_cluster
from sim.cluster.rules import render_rules
from sim.readers.cluster import parse_cluster
from sim.readers.iptables_save import parse_iptables_save
from tests import paths

EXAMPLES = int(os.environ.get("KUBEHOP_FUZZ_EXAMPLES", "150"))
"""Examples per property; `bench/fuzz.py` raises it for a long run."""

DEMO_DOCS: list[Any] = [d for d in yaml.safe_load_all(paths.DEMO.read_text()) if d]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["", "10.0.0.1", "::1", "10.0.0.0/8", "TCP", "default", "a" * 300]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


ALL_PATHS = _paths(DEMO_DOCS)


def _replaced(docs: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(docs, dict):
        return {k: (_replaced(v, rest, value) if k == head else v) for k, v in docs.items()}
    if isinstance(docs, list):
        return [(_replaced(v, rest, value) if i == head else v) for i, v in enumerate(docs)]
    return docs  # an earlier change replaced the container this path went through


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=EXAMPLES <= 150,
)
@given(
    changes=st.lists(st.tuples(st.sampled_from(ALL_PATHS), values), min_size=1, max_size=3),
    as_json=st.booleans(),
)
def test_a_mutated_cluster_file_loads_or_is_one_error(
    changes: list[tuple[tuple[Any, ...], Any]], as_json: bool
) -> None:
    docs: Any = DEMO_DOCS
    for path, value in changes:
        docs = _replaced(docs, path, value)
    if as_json:
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}, default=str)
    else:
        text = yaml.safe_dump_all(docs if isinstance(docs, list) else [docs])
    try:
        parse_cluster(text, "fuzz.yaml")
    except KubehopError as err:
        assert "\n" not in str(err)


RENDERED = render_rules(demo_cluster(), "node-a").splitlines()


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 150)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(RENDERED) - 1),
            st.sampled_from(["drop", "dup", "cut", "noise"]),
            st.text(max_size=12),
        ),
        min_size=1,
        max_size=4,
    ),
    lazy=st.booleans(),
)
def test_a_mutated_iptables_save_parses_or_is_one_error(
    edits: list[tuple[int, str, str]], lazy: bool
) -> None:
    lines = list(RENDERED)
    for at, how, noise in edits:
        at %= len(lines)
        if how == "drop":
            del lines[at]
        elif how == "dup":
            lines.insert(at, lines[at])
        elif how == "cut":
            lines[at] = lines[at][: len(lines[at]) // 2]
        else:
            lines[at] = lines[at] + " " + noise
        if not lines:
            lines = ["*nat"]
    try:
        ruleset = parse_iptables_save("\n".join(lines) + "\n", "fuzz.rules", lazy=lazy)
        for chains in ruleset.tables.values():
            for name in list(chains):
                chains[name]
    except KubehopError as err:
        assert "\n" not in str(err)


@pytest.mark.parametrize(
    "labels",
    [{"app": {"x": 1}}, {"app": ["a"]}, {"app": 5}],
    ids=["mapping", "list", "number"],
)
def test_a_label_value_that_is_not_a_string_is_one_error(labels: dict[str, Any]) -> None:
    docs = _replaced(DEMO_DOCS, _pod1_labels(), labels)
    with pytest.raises(KubehopError) as err:
        parse_cluster(yaml.safe_dump_all(docs), "c.yaml")
    assert "metadata.labels" in str(err.value)


def _pod1_labels() -> tuple[Any, ...]:
    for path in ALL_PATHS:
        if path[-2:] == ("metadata", "labels"):
            return path
    raise AssertionError("the demo has labelled objects")


NODE_DUMP = (paths.REAL / "k8s-worker-1.iptables-legacy.rules").read_text().splitlines()
RULE_LINES = [i for i, line in enumerate(NODE_DUMP) if " -A " in f" {line}"]
ORIGINAL = parse_iptables_save("\n".join(NODE_DUMP) + "\n", "w1.rules")
NOISE = [
    "[unsupported revision]",
    "--frob 7",
    "! --ctexpire 3",
    '-m bpf --bytecode "1,6 0 0 0"',
    "-m conntrack --ctstate BOGUS",
    "--to-destination 0.0.0.0:0",
    "-p 253",
    "-s 10.0.0.300",
]


@settings(max_examples=EXAMPLES // 3, deadline=None, derandomize=EXAMPLES <= 150)
@given(
    garbled=st.lists(
        st.tuples(st.sampled_from(RULE_LINES), st.integers(0, 30), st.sampled_from(NOISE)),
        min_size=1,
        max_size=4,
        unique_by=lambda g: g[0],
    )
)
def test_a_garbled_rule_leaves_the_rest_of_a_node_dump_as_it_was(
    garbled: list[tuple[int, int, str]],
) -> None:
    # Words cut from a rule or another iptables version's added: the kernel held it, so the
    # dump loads; the rule stays in its place and every other rule reads as before.
    lines = list(NODE_DUMP)
    touched: set[int] = set()
    for at, keep, noise in garbled:
        words = lines[at].split(" -j ")[0].split()
        start = 3 if words[0].startswith("[") else 2  # the counters, -A and the chain stay
        lines[at] = " ".join(words[: start + keep]) + " " + noise
        touched.add(at + 1)
    ruleset = parse_iptables_save("\n".join(lines) + "\n", "w1.rules")
    for table, chains in ORIGINAL.tables.items():
        for name, chain in chains.items():
            after = ruleset.tables[table][name].rules
            assert len(after) == len(chain.rules)
            for before, now in zip(chain.rules, after, strict=True):
                assert now.lineno == before.lineno
                if now.lineno not in touched:
                    assert now == before
