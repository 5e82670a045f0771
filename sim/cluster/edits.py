"""Cluster edits a user makes while watching: delete a pod, scale its controller.

Pure functions over the frozen `Cluster`: each returns a new cluster, the way
the API server would look after the controllers settled — the ReplicaSet
controller replaces or removes pods, the CNI's IPAM gives a new pod the next
free address (host-local: of its node's podCIDR; Calico: of its node's blocks), the EndpointSlice controller updates the
Service's endpoints. The rules then follow from rendering the new cluster.
"""

from __future__ import annotations

import difflib
import random
from dataclasses import dataclass
from ipaddress import IPv4Address

from model.cluster import Cluster, Endpoint, EndpointSlice, Node, Pod
from model.errors import KubehopError
from sim.readers.cluster.names import DNS1123_SUBDOMAIN, SUBDOMAIN_RULE

# Kubernetes' generateName suffix alphabet (k8s.io/apimachinery/pkg/util/rand):
# no vowels, so a generated name never spells a word, and no 0/1/3 lookalikes.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LEN = 5
# The API server's SimpleNameGenerator cuts generateName to 63 - 5 characters
# before adding the suffix, so a long ReplicaSet name still makes a short pod name.
_NAME_BASE_MAX = 63 - _NAME_SUFFIX_LEN


class EditError(KubehopError):
    """An edit that cannot be made: an unknown pod, nothing to scale, no free address."""


@dataclass(frozen=True)
class EditResult:
    """A cluster after an edit, and what the edit did."""

    cluster: Cluster
    """The new cluster."""
    summary: str
    """One line saying what changed."""
    added: tuple[Pod, ...] = ()
    """Pods that appeared (replacements, scale-up)."""
    removed: tuple[Pod, ...] = ()
    """Pods that went away."""


def delete_pod(cluster: Cluster, namespace: str, name: str, *, seed: int = 0) -> EditResult:
    """Delete pod `namespace/name`; if a ReplicaSet owns it, add the replacement it makes.

    The replacement stays on the same node. A real scheduler may pick another
    node; keeping the node shows host-local IPAM's choice of the next address.
    """
    pod = cluster.pod(namespace, name)
    if pod is None:
        raise EditError(f"no pod {namespace}/{name} to delete")
    remaining = tuple(p for p in cluster.pods if p.key != pod.key)
    slices = _without_endpoint(cluster.endpoint_slices, pod)
    after = _rebuilt(cluster, remaining, slices)
    if pod.owner is None or pod.owner.kind != "ReplicaSet":
        return EditResult(after, f"pod {pod.name} deleted ({pod.ip} freed)", removed=(pod,))
    node = _node(cluster, pod.node)
    replacement = _new_pod(after, template=pod, node=node, rng=random.Random(seed))
    after = _with_pod(after, replacement, template=pod)
    summary = (
        f"pod {pod.name} deleted; ReplicaSet {pod.owner.name} made {replacement.name}"
        f" on {node.name} with {replacement.ip}"
    )
    return EditResult(after, summary, added=(replacement,), removed=(pod,))


def owned_pods(cluster: Cluster, namespace: str, owner: str) -> tuple[Pod, ...]:
    """The pods of ReplicaSet `owner`, or of the Deployment `owner` through its ReplicaSet.

    A Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>`, which
    is how a Deployment name finds its pods here (kubehop has no Deployment object).
    """
    return tuple(
        p
        for p in cluster.pods
        if p.namespace == namespace
        and p.owner is not None
        and p.owner.kind == "ReplicaSet"
        and (p.owner.name == owner or p.owner.name.rsplit("-", 1)[0] == owner)
    )


def scale(
    cluster: Cluster,
    namespace: str,
    owner: str,
    *,
    delta: int | None = None,
    replicas: int | None = None,
    seed: int = 0,
) -> EditResult:
    """Scale ReplicaSet (or Deployment) `owner` by `delta`, or to `replicas`."""
    pods = owned_pods(cluster, namespace, owner)
    if not pods:
        raise EditError(f"no pods owned by {namespace}/{owner} to scale")
    if (delta is None) == (replicas is None):
        raise EditError("scale needs exactly one of delta and replicas")
    target = len(pods) + delta if delta is not None else replicas
    assert target is not None
    if target < 0:
        raise EditError(f"{owner} has {_replicas(len(pods))}; cannot scale to {target}")
    rs_name = pods[0].owner.name if pods[0].owner else owner
    if target == len(pods):
        return EditResult(cluster, f"ReplicaSet {rs_name} already has {_replicas(target)}")
    if target < len(pods):
        doomed = _scale_down_order(cluster, pods)[: len(pods) - target]
        gone = {p.key for p in doomed}
        slices = cluster.endpoint_slices
        for pod in doomed:
            slices = _without_endpoint(slices, pod)
        after = _rebuilt(cluster, tuple(p for p in cluster.pods if p.key not in gone), slices)
        names = ", ".join(p.name for p in doomed)
        return EditResult(
            after, f"ReplicaSet {rs_name} scaled to {target}: deleted {names}", removed=doomed
        )
    rng = random.Random(seed)
    after = cluster
    added: list[Pod] = []
    template = pods[0]
    for _ in range(target - len(pods)):
        node = _least_loaded_node(after, namespace, owner)
        pod = _new_pod(after, template=template, node=node, rng=rng)
        after = _with_pod(after, pod, template=template)
        added.append(pod)
    names = ", ".join(f"{p.name} ({p.node} {p.ip})" for p in added)
    return EditResult(
        after, f"ReplicaSet {rs_name} scaled to {target}: added {names}", added=tuple(added)
    )


def next_free_ip(cluster: Cluster, node: Node) -> IPv4Address:
    """The address the CNI's IPAM would give the next pod on `node` (host-local's next free
    one of its podCIDR; calico-ipam's lowest free one of its blocks)."""
    from sim.cni import cni_of
    from sim.cni.ipam import IpamError

    try:
        return cni_of(cluster).next_pod_ip(node)
    except IpamError as err:
        raise EditError(str(err)) from None


def generate_name(prefix: str, taken: set[str], rng: random.Random) -> str:
    """`<prefix>-<5 characters>` as generateName makes it, not in `taken`."""
    base = f"{prefix}-"[:_NAME_BASE_MAX]
    while True:
        suffix = "".join(rng.choice(_NAME_ALPHABET) for _ in range(_NAME_SUFFIX_LEN))
        name = base + suffix
        if name not in taken:
            return name


def rules_diff(before: str, after: str) -> tuple[str, ...]:
    """The unified diff (no context lines) from one iptables-save text to another; () if equal."""
    if before == after:
        return ()
    return tuple(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=0
        )
    )


def _node(cluster: Cluster, name: str) -> Node:
    node = cluster.node(name)
    if node is None:
        raise EditError(f"pod's node {name} is not in the cluster")
    return node


def _new_pod(cluster: Cluster, *, template: Pod, node: Node, rng: random.Random) -> Pod:
    assert template.owner is not None
    owner = template.owner.name
    # The loader checks pods' names, not their ownerReferences': a real ReplicaSet
    # always has a valid name, so one that is not cannot have made these pods.
    if not DNS1123_SUBDOMAIN.fullmatch(owner) or len(owner) > 253:
        raise EditError(
            f"ReplicaSet {owner!r} (owner of pod {template.key}) cannot name new pods:"
            f" its name {SUBDOMAIN_RULE}"
        )
    taken = {p.name for p in cluster.pods if p.namespace == template.namespace}
    name = generate_name(owner, taken, rng)
    ip = node.internal_ip if template.host_network else next_free_ip(cluster, node)
    return template.model_copy(update={"name": name, "ip": ip, "node": node.name, "ready": True})


def _replicas(count: int) -> str:
    return f"{count} replica" if count == 1 else f"{count} replicas"


def _least_loaded_node(cluster: Cluster, namespace: str, owner: str) -> Node:
    # The default scheduler spreads a controller's replicas over nodes; fewest
    # replicas of this owner, then fewest pods, then file order stands in for it.
    replicas = [p.node for p in owned_pods(cluster, namespace, owner)]
    candidates = [n for n in cluster.nodes if n.pod_cidr is not None]
    if not candidates:
        raise EditError("no node has a podCIDR to place a new pod on")
    return min(
        candidates,
        key=lambda n: (replicas.count(n.name), len(cluster.pods_on(n.name))),
    )


def _scale_down_order(cluster: Cluster, pods: tuple[Pod, ...]) -> tuple[Pod, ...]:
    # The ReplicaSet controller deletes not-ready pods first, then pods on nodes
    # holding more replicas, then the newest (later in the file stands for newer).
    per_node = {p.node: sum(q.node == p.node for q in pods) for p in pods}
    order = sorted(
        enumerate(pods), key=lambda item: (item[1].ready, -per_node[item[1].node], -item[0])
    )
    return tuple(pod for _, pod in order)


def _without_endpoint(slices: tuple[EndpointSlice, ...], pod: Pod) -> tuple[EndpointSlice, ...]:
    def keep(ep: Endpoint) -> bool:
        return not (ep.ip == pod.ip and ep.pod in (None, pod.name))

    return tuple(
        s.model_copy(update={"endpoints": tuple(e for e in s.endpoints if keep(e))})
        if s.namespace == pod.namespace and not all(keep(e) for e in s.endpoints)
        else s
        for s in slices
    )


def _with_pod(cluster: Cluster, pod: Pod, *, template: Pod) -> Cluster:
    """Add `pod`, and an endpoint for it wherever the Services select it."""
    labels = pod.label_map()
    slices = list(cluster.endpoint_slices)
    for service in cluster.services:
        if service.namespace != pod.namespace or not service.selector:
            continue
        if any(labels.get(k) != v for k, v in service.selector):
            continue
        positions = [
            i
            for i, s in enumerate(slices)
            if s.namespace == service.namespace and s.service == service.name
        ]
        if not positions:
            continue
        # The new pod runs the template's containers, so its endpoint is the
        # template's with the address, node and name changed.
        where = next(
            (i for i in positions if any(e.pod == template.name for e in slices[i].endpoints)),
            positions[0],
        )
        model = next((e for e in slices[where].endpoints if e.pod == template.name), None)
        endpoint = (model or Endpoint(ip=pod.ip)).model_copy(
            update={
                "ip": pod.ip,
                "node": pod.node,
                "pod": pod.name,
                "ready": pod.ready,
                "serving": pod.ready,
                "terminating": False,
            }
        )
        slices[where] = slices[where].model_copy(
            update={"endpoints": (*slices[where].endpoints, endpoint)}
        )
    return _rebuilt(cluster, (*cluster.pods, pod), tuple(slices))


def _rebuilt(cluster: Cluster, pods: tuple[Pod, ...], slices: tuple[EndpointSlice, ...]) -> Cluster:
    # A new Cluster rather than model_copy: the lookups are cached per instance,
    # and a copy would carry the old pods' indexes along.
    fields = {name: getattr(cluster, name) for name in Cluster.model_fields}
    fields.update(pods=pods, endpoint_slices=slices)
    return Cluster(**fields)
