"""A set's elements as a node's `nft list` and an `nft -f` transaction give them: a dynamic
set's `timeout T expires E` is not part of the key the walker matches against."""

from __future__ import annotations

import pytest

from model.nftables import NftCmp
from sim.readers.nftables import parse_nft, parse_rule

LISTED = """\
table ip kube-proxy {
\tset affinity {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t\ttimeout 3h
\t\telements = { 10.0.0.5 timeout 3h expires 2h59m58s, 10.0.0.6 comment "web" timeout 3h expires 1h }
\t}
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 172.30.0.10 . tcp . 80 : goto service-ABC,
\t\t\t     172.30.0.11 . udp . 53 : goto service-DEF }
\t}
}
"""

ADDED = """\
add table ip kube-proxy
add set ip kube-proxy affinity { type ipv4_addr ; flags dynamic,timeout ; timeout 3h ; }
add element ip kube-proxy affinity { 10.0.0.5 timeout 3h, 10.0.0.6 comment "web" }
add element ip kube-proxy affinity { 10.0.0.7 }
delete element ip kube-proxy affinity { 10.0.0.7 }
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LISTED, [(("10.0.0.5",), None, None), (("10.0.0.6",), "web", None)]),
        (ADDED, [(("10.0.0.5",), None, None), (("10.0.0.6",), "web", None)]),
    ],
    ids=["nft list", "nft -f"],
)
def test_a_dynamic_sets_elements_are_keyed_without_their_timeouts(
    text: str, expected: list[tuple[tuple[str, ...], str | None, str | None]]
) -> None:
    table = parse_nft(text, source="node.nft").tables[0]
    elements = table.sets["affinity"].elements
    assert [(e.key, e.comment, e.value) for e in elements] == expected


def test_a_maps_elements_keep_their_concatenated_keys_and_verdicts() -> None:
    table = parse_nft(LISTED, source="node.nft", lazy=True).tables[0]
    elements = table.sets["service-ips"].elements
    assert [(e.key, e.value) for e in elements] == [
        (("172.30.0.10", "tcp", "80"), "goto service-ABC"),
        (("172.30.0.11", "udp", "53"), "goto service-DEF"),
    ]


def test_a_rules_anonymous_set_is_read_as_its_values() -> None:
    rule = parse_rule('ip daddr . tcp dport { 10.0.0.1 . 80, 10.0.0.2 . 443 comment "x" } accept')
    match = rule.exprs[0]
    assert isinstance(match, NftCmp)
    assert (match.left, match.values) == (
        ("ip daddr", "tcp dport"),
        ("10.0.0.1 . 80", "10.0.0.2 . 443"),
    )
