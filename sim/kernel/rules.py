"""What the kernel evaluates on a node: its netfilter rules, as a small protocol.

kube-proxy's rules rendered by kubehop (`sim.proxy`) and a real node's
`iptables-save` read from a user's file (`sim.readers.node_dump`) both give
this; the walker needs nothing else of either, so it never asks which it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Protocol

from model.frozen import frozen
from model.ipset import IpSets
from model.netfilter import Ruleset

if TYPE_CHECKING:
    from model.nftables import NftRuleset

__all__ = ["ForeignRules", "NodeRules", "nft_of"]


class NodeRules(Protocol):
    """One node's netfilter rules, as text and parsed, and the ipsets they look up.

    A node may also hold nftables tables (kube-proxy's in nftables mode): an
    implementation that has them gives them as an `nft` attribute (an
    `NftRuleset`), read through `nft_of`; one without it has none, as a real
    node's iptables-save dump.
    """

    @property
    def node(self) -> str:
        """The node."""

    @property
    def text(self) -> str:
        """The rules as `iptables-save` prints them."""

    @property
    def ruleset(self) -> Ruleset:
        """The text, parsed (chains may be parsed when first visited)."""

    @property
    def rendered(self) -> bool:
        """kubehop rendered them from the cluster (False: a real node's dump)."""

    @property
    def ipsets(self) -> IpSets:
        """`ipset save` of the node, by set name; empty when none is known."""


@frozen
class ForeignRules:
    """Rules that agents other than kube-proxy write on a node (the CNI's), as iptables-save
    prints them, for the node's tables to include, and the ipsets those rules look up."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per table (`raw`, `mangle`, `filter`, `nat`), the user chains they declare."""
    rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per table, their `-A CHAIN …` lines; a built-in chain's come after kube-proxy's
    (appended, as Flannel writes them)."""
    first: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per table, `-A CHAIN …` lines of built-in chains that come before everyone else's,
    in this order (inserted and kept on top, as Calico's Felix writes its jumps)."""
    ipsets: IpSets = field(default_factory=dict)
    """The sets the rules match with `-m set` (Calico's `cali40…`), by name."""


def nft_of(rules: NodeRules) -> NftRuleset | None:
    """The node's nftables tables, None when it has none (iptables mode, a real iptables dump).

    Not a member of the protocol, so that every `NodeRules` written before
    nftables mode keeps meaning "no nft tables" without a change.
    """
    found = getattr(rules, "nft", None)
    if found is None:
        return None
    # Imported only when a node has an `nft` attribute: iptables mode never loads nftables'
    # models (`tests/test_layers.py`).
    from model.nftables import NftRuleset

    return found if isinstance(found, NftRuleset) else None
