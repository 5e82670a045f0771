"""Chain names exactly as kube-proxy (iptables mode) hashes them.

Kubernetes 1.31, pkg/proxy/iptables/proxier.go: `portProtoHash` is the first 16
characters of base32(sha256(servicePortName + protocol)); a KUBE-SEP- chain
hashes the endpoint ("ip:port") in as well. The service port name is
`ns/name:port`, or `ns/name` for an unnamed port, and the protocol is lower-case.
"""

from __future__ import annotations

import functools
import hashlib

from model.cluster import Service, ServicePort
from model.packet import Proto

KUBE_SERVICES = "KUBE-SERVICES"
"""nat: ClusterIPs, external IPs, LB IPs; filter: REJECT/DROP for services without endpoints."""
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
"""filter: REJECT/DROP for external IPs, LB IPs and NodePorts without (local) endpoints."""
KUBE_NODEPORTS = "KUBE-NODEPORTS"
"""nat: NodePorts; filter: ACCEPT for health check node ports."""
KUBE_POSTROUTING = "KUBE-POSTROUTING"
"""nat: MASQUERADE of marked packets."""
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
"""nat: sets the masquerade bit."""
KUBE_FORWARD = "KUBE-FORWARD"
"""filter: lets marked and established traffic through FORWARD."""
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
"""filter: drops LB traffic that loadBalancerSourceRanges did not accept."""
KUBE_FIREWALL = "KUBE-FIREWALL"
"""filter: kubelet's (and kube-proxy's copy of the) localnet martian rule."""
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
"""Empty chain kube-proxy watches to notice a flush of its tables."""
KUBE_KUBELET_CANARY = "KUBE-KUBELET-CANARY"
"""Empty chain kubelet watches to notice a flush of its tables."""
KUBE_IPTABLES_HINT = "KUBE-IPTABLES-HINT"
"""Empty mangle chain kubelet creates to tell others which iptables backend is in use."""

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)
"""Two base32 characters for each 10-bit value."""


@functools.lru_cache(maxsize=1 << 18)
def _hash16(text: str) -> str:
    # The first 16 base32 characters encode exactly the digest's first 80 bits,
    # so they are read off 10 bits at a time (base64.b32encode loops in Python).
    # The cache serves the SEP name a SVC rule and its SEP chain both need,
    # and every node after the first.
    v = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return (
        p[v >> 70]
        + p[(v >> 60) & 1023]
        + p[(v >> 50) & 1023]
        + p[(v >> 40) & 1023]
        + p[(v >> 30) & 1023]
        + p[(v >> 20) & 1023]
        + p[(v >> 10) & 1023]
        + p[v & 1023]
    )


def port_proto_hash(svc_port_name: str, protocol: str) -> str:
    """kube-proxy's `portProtoHash`: 16 base32 characters of sha256(name + protocol)."""
    return _hash16(svc_port_name + protocol.lower())


def service_port_name(service: Service, port: ServicePort) -> str:
    """`ns/name:port`, or `ns/name` when the port is unnamed (kube-proxy's ServicePortName)."""
    return f"{service.key}:{port.name}" if port.name else service.key


def service_port_chain_name(svc_port_name: str, protocol: str | Proto) -> str:
    """The KUBE-SVC- chain: the service port's endpoints under Cluster traffic policy."""
    return SVC_PREFIX + port_proto_hash(svc_port_name, str(protocol))


def service_local_chain_name(svc_port_name: str, protocol: str | Proto) -> str:
    """The KUBE-SVL- chain: the node-local endpoints under Local traffic policy."""
    return SVL_PREFIX + port_proto_hash(svc_port_name, str(protocol))


def service_external_chain_name(svc_port_name: str, protocol: str | Proto) -> str:
    """The KUBE-EXT- chain: where NodePort, external IP and LB IP traffic goes first."""
    return EXT_PREFIX + port_proto_hash(svc_port_name, str(protocol))


def service_firewall_chain_name(svc_port_name: str, protocol: str | Proto) -> str:
    """The KUBE-FW- chain: loadBalancerSourceRanges filtering."""
    return FW_PREFIX + port_proto_hash(svc_port_name, str(protocol))


def endpoint_chain_name(svc_port_name: str, protocol: str | Proto, endpoint: str) -> str:
    """The KUBE-SEP- chain of one endpoint, `endpoint` being "ip:port"."""
    return SEP_PREFIX + _hash16(svc_port_name + str(protocol).lower() + endpoint)
