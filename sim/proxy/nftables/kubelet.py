"""What `iptables-save` shows on a node whose kube-proxy runs in nftables mode.

kube-proxy in nftables mode writes no iptables rules at all; kubelet still
does, whatever the proxy mode (Kubernetes 1.31, pkg/kubelet/kubelet_network_linux.go):
the empty KUBE-IPTABLES-HINT chain in mangle (so other agents can tell
iptables-nft from legacy), KUBE-KUBELET-CANARY in mangle, nat and filter (to
notice a flush), and KUBE-FIREWALL with its martian-packet rule, jumped to
from INPUT and OUTPUT. The CNI's rules (`extra`) come after, as with iptables
mode.
"""

from __future__ import annotations

from sim.kernel.rules import ForeignRules
from sim.proxy.iptables import names as ipt
from sim.proxy.iptables.save import BUILTINS, save_rule
from sim.proxy.iptables.sync import KUBE_FIREWALL_RULE

__all__ = ["kubelet_iptables"]


def kubelet_iptables(extra: ForeignRules | None = None) -> str:
    """The node's iptables-save text (mangle, filter, nat): kubelet's chains and `extra`'s."""
    chains: dict[str, list[str]] = {
        "mangle": [ipt.KUBE_IPTABLES_HINT, ipt.KUBE_KUBELET_CANARY],
        "filter": [ipt.KUBE_FIREWALL, ipt.KUBE_KUBELET_CANARY],
        "nat": [ipt.KUBE_KUBELET_CANARY],
    }
    rules: dict[str, dict[str, list[str]]] = {
        "mangle": {},
        "filter": {
            "INPUT": [f"-A INPUT -j {ipt.KUBE_FIREWALL}"],
            "OUTPUT": [f"-A OUTPUT -j {ipt.KUBE_FIREWALL}"],
            ipt.KUBE_FIREWALL: [save_rule(KUBE_FIREWALL_RULE)],
        },
        "nat": {},
    }
    if extra is not None:
        for table in chains:
            chains[table] += extra.chains.get(table, ())
            for line in extra.rules.get(table, ()):
                rules[table].setdefault(line.split()[1], []).append(line)
    lines: list[str] = []
    for table in ("mangle", "filter", "nat"):
        builtins = BUILTINS[table]
        users = sorted(set(chains[table]))
        lines.append(f"*{table}")
        lines += [f":{c} ACCEPT [0:0]" for c in builtins]
        lines += [f":{c} - [0:0]" for c in users]
        for chain in (*builtins, *users):
            lines += rules[table].get(chain, [])
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
