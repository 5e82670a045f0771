"""Cluster DNS as a pod's resolver and CoreDNS answer it, summarised to one hop.

A pod's /etc/resolv.conf has `search <ns>.svc.cluster.local svc.cluster.local
cluster.local` and `options ndots:5`: a name with fewer than five dots is tried
with each search domain first, then as it is. A Service name answers with its
ClusterIP; a headless Service answers with its ready endpoints' addresses.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher
from ipaddress import IPv4Address

from model.cluster import Cluster, Service, ServiceType
from model.errors import RequestError
from model.frozen import frozen

CLUSTER_DOMAIN = "cluster.local"
NDOTS = 5


@frozen
class Resolution:
    """What the resolver did for one name."""

    name: str
    """The name as the user wrote it."""
    queries: tuple[str, ...]
    """The fully qualified names asked, in order, up to the one that answered."""
    fqdn: str
    """The name that answered."""
    addresses: tuple[IPv4Address, ...]
    """The A records of the answer."""
    service: Service
    """The Service the name belongs to."""

    @property
    def headless(self) -> bool:
        """A headless Service's name resolves to pod IPs; kube-proxy is not involved."""
        return self.service.headless


def search_path(namespace: str) -> tuple[str, ...]:
    """The search domains kubelet writes into a pod's resolv.conf."""
    return (
        f"{namespace}.svc.{CLUSTER_DOMAIN}",
        f"svc.{CLUSTER_DOMAIN}",
        CLUSTER_DOMAIN,
    )


def candidates(name: str, namespace: str) -> tuple[str, ...]:
    """The names the resolver asks for, in order (glibc's ndots rule)."""
    if name.endswith("."):
        return (name.rstrip("."),)
    searched = tuple(f"{name}.{domain}" for domain in search_path(namespace))
    if name.count(".") >= NDOTS:
        return (name, *searched)
    return (*searched, name)


def answer(cluster: Cluster, fqdn: str) -> tuple[Service, tuple[IPv4Address, ...]] | None:
    """CoreDNS's answer for `fqdn`: `<svc>.<ns>.svc.cluster.local` names a Service.

    DNS names compare without regard to case (RFC 4343): `SVC-B` finds svc-b.
    """
    fqdn = fqdn.lower()
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if not fqdn.endswith(suffix):
        return None
    labels = fqdn[: -len(suffix)].split(".")
    if len(labels) != 2:
        return None
    service = cluster.service(labels[1], labels[0])
    if service is None:
        return None
    if service.type is ServiceType.EXTERNAL_NAME:
        raise RequestError(
            f"{service.key} is an ExternalName Service: DNS answers with a CNAME to"
            f" {service.external_name!r}, a name outside the cluster, which kubehop does not"
            " resolve; kube-proxy writes no rules for it"
        )
    if service.cluster_ip is not None:
        return service, (service.cluster_ip,)
    ready = tuple(ep.ip for s in cluster.slices_of(service) for ep in s.endpoints if ep.ready)
    return service, tuple(dict.fromkeys(ready))


def resolve(cluster: Cluster, name: str, namespace: str) -> Resolution:
    """Resolve `name` from a pod in `namespace`; RequestError when nothing answers."""
    asked: list[str] = []
    for fqdn in candidates(name, namespace):
        asked.append(fqdn)
        found = answer(cluster, fqdn)
        if found is None:
            continue
        service, addresses = found
        if not addresses:
            raise RequestError(
                f"'{name}' resolves to headless Service {service.key}, which has no ready "
                "endpoints (NXDOMAIN-like empty answer)"
            )
        return Resolution(name, tuple(asked), fqdn, addresses, service)
    close = _close_services(cluster, name, namespace)
    hint = f"; did you mean {either(close)}?" if close else ""
    raise RequestError(
        f"{name!r} does not resolve: no Service answers to {', '.join(asked)} (NXDOMAIN){hint}"
    )


def _close_services(cluster: Cluster, name: str, namespace: str) -> tuple[str, ...]:
    """The Service names nearest to a mistyped `name`, written the way it was (`web`, `web.shop`)."""
    typed = name.lower().rstrip(".")
    suffix = next((s for s in (f".svc.{CLUSTER_DOMAIN}", ".svc") if typed.endswith(s)), "")
    base = typed.removesuffix(suffix)
    names = [
        s.name if s.namespace == namespace and "." not in base else f"{s.name}.{s.namespace}"
        for s in cluster.services
    ]
    return tuple(f"{close}{suffix}" for close in closest(base, names))


_CLOSE = 0.7
"""How alike (difflib's ratio) a name must be to be offered for a typo."""


def closest(word: str, names: Iterable[str]) -> tuple[str, ...]:
    """The names most like a mistyped `word` (difflib's ratio, at least 0.7), best first.

    Only the best score and its ties: `pod11` suggests pod1, not pod2 as well.
    difflib's own cutoff, 0.6, would answer `nope` with node-a, node-b or node-c.
    """
    scored: dict[str, float] = {}
    # As difflib.get_close_matches compares: `word` is the matcher's second sequence, whose
    # index is built once, not once per name (150,000 pods made that 20 seconds).
    matcher = SequenceMatcher(None)
    matcher.set_seq2(word)
    size = len(word)
    for candidate in names:
        # The cheap upper bounds first: the lengths alone (real_quick_ratio), then the
        # letters shared (quick_ratio).
        length = len(candidate)
        if 2 * min(size, length) < _CLOSE * (size + length):
            continue
        matcher.set_seq1(candidate)
        if matcher.quick_ratio() >= _CLOSE:
            ratio = matcher.ratio()
            if ratio >= _CLOSE and candidate != word:
                scored[candidate] = ratio
    if not scored:
        return ()
    best = max(scored.values())
    return tuple(sorted(c for c, ratio in scored.items() if ratio == best))[:3]


def either(names: tuple[str, ...]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
