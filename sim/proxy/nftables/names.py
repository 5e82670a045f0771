"""Names exactly as kube-proxy (nftables mode) gives them.

Kubernetes 1.31, pkg/proxy/nftables/proxier.go: everything lives in one table,
`ip kube-proxy`, so no name needs a `KUBE-` prefix. A Service port's chains are
`PREFIX` + `HASH-namespace/name/protocol/port` and an endpoint's
`PREFIX` + `HASH-namespace/name/protocol/port__ip/port`, where HASH is the first
8 characters of base32(sha256(the rest)) (`hashAndTruncate`), so the names
read as what they are and still differ visibly. A name longer than 240
characters is cut to 237 plus `...` (it cannot happen for IPv4).
"""

from __future__ import annotations

import functools
import hashlib

TABLE = "kube-proxy"
"""The table's name (family `ip` for IPv4)."""

# Base chains: `TYPE-HOOK`, plus the one filter chain after DNAT at output.
FILTER_PREROUTING = "filter-prerouting"
FILTER_INPUT = "filter-input"
FILTER_FORWARD = "filter-forward"
FILTER_OUTPUT = "filter-output"
FILTER_OUTPUT_POST_DNAT = "filter-output-post-dnat"
NAT_PREROUTING = "nat-prerouting"
NAT_OUTPUT = "nat-output"
NAT_POSTROUTING = "nat-postrouting"

SERVICES = "services"
"""Dispatches ClusterIPs, external and LB IPs (`service-ips`) and NodePorts."""
SERVICE_IPS = "service-ips"
"""Verdict map: `ip . proto . port` → goto the Service port's chain."""
SERVICE_NODEPORTS = "service-nodeports"
"""Verdict map: `proto . port` → goto the Service port's external chain."""
NODEPORT_IPS = "nodeport-ips"
"""The addresses that accept NodePort traffic (the node's primary IP by default)."""
CLUSTER_IPS = "cluster-ips"
"""Every active ClusterIP, for rejecting its undefined ports."""
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

CLUSTER_PREFIX = "service-"
LOCAL_PREFIX = "local-"
EXTERNAL_PREFIX = "external-"
ENDPOINT_PREFIX = "endpoint-"
AFFINITY_PREFIX = "affinity-"
FIREWALL_PREFIX = "firewall-"

_NAME_MAX = 256 - 16
"""knftables.NameLengthMax less the longest prefix."""


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# Base32 of ten bits at a time: the first 8 characters of base32(digest) are
# its first 40 bits, four lookups instead of base64.b32encode's Python loop.
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)


@functools.lru_cache(maxsize=1 << 18)
def hash_and_truncate(name: str) -> str:
    """kube-proxy's `hashAndTruncate`: `HASH8-name`, cut to 240 characters."""
    bits = int.from_bytes(hashlib.sha256(name.encode()).digest()[:5], "big")
    pairs = _B32_PAIRS
    named = (
        f"{pairs[bits >> 30]}{pairs[(bits >> 20) & 1023]}{pairs[(bits >> 10) & 1023]}"
        f"{pairs[bits & 1023]}-{name}"
    )
    if len(named) > _NAME_MAX:
        named = named[: _NAME_MAX - 3] + "..."
    return named


def service_port_base(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """`ULMVA6XW-ns1/svc1/tcp/p80` (the port's name; empty for an unnamed port)."""
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}")


def endpoint_base(namespace: str, name: str, protocol: str, port_name: str, endpoint: str) -> str:
    """`5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80`, `endpoint` being `ip:port`."""
    ip, _, port = endpoint.rpartition(":")
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}__{ip}/{port}")
