"""Generate a large, realistic cluster file, for testing kubehop at Kubernetes' scale limits.

`kubehop gen` writes one (the benchmarks and tests call `generate` directly):

    kubehop gen --nodes 5000 --pods 150000 --services 10000 -o big.json

The output is what `kubectl get nodes,pods,services,endpointslices -o json` would
print for a cluster of that size (trimmed of fields the network ignores), plus
kubehop's KubeProxyConfiguration, CNIConfig and one ExternalClient. Addresses
follow a common large-cluster plan:

- node InternalIPs from 172.16.0.0/12,
- a /24 podCIDR per node from clusterCIDR 10.128.0.0/9 (room for 32,768 nodes;
  the usual 10.244.0.0/16 holds only 256),
- ClusterIPs from the service CIDR 10.96.0.0/12.

Each Service fronts one Deployment's pods, spread over the nodes the way the
scheduler spreads replicas; its EndpointSlices are written out, cut at 100
endpoints as the controller cuts them. The same arguments give the same file.
"""

from __future__ import annotations

import hashlib
import json
import random
from ipaddress import IPv4Address
from typing import Any

from model.errors import KubehopError

__all__ = ["generate"]

_NODE_BASE = int(IPv4Address("172.16.0.10"))
_POD_BASE = int(IPv4Address("10.128.0.0"))
_SERVICE_BASE = int(IPv4Address("10.96.0.10"))
_CLIENT = "172.16.255.100"
_MAX_NODES = 32768  # /24s in 10.128.0.0/9
_MAX_PODS_PER_NODE = 253  # .2-.254 of a /24: .1 is the node's bridge
_MAX_SERVICES = (1 << 20) - 20  # 10.96.0.0/12
_NODE_PORTS = range(30000, 32768)
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SLICE_SIZE = 100
_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.47"
_STARTED = "2025-01-15T09:00:00Z"


def generate(nodes: int, pods: int, services: int, seed: int) -> str:
    """A cluster file (JSON `kind: List`) with the given numbers of objects."""
    _check(nodes, pods, services)
    rng = random.Random(seed)
    width = len(str(max(nodes - 1, 1)))
    node_names = [f"node-{i:0{width}d}" for i in range(nodes)]
    items: list[dict[str, Any]] = [
        *_configuration(),
        *(_node(i, n) for i, n in enumerate(node_names)),
    ]

    apps = max(services, 1)
    sizes = _app_sizes(rng, apps, pods)
    namespaces = _namespaces(apps)
    # The scheduler spreads replicas: each app starts at a random node and
    # walks a shuffled node order, so nodes fill evenly.
    order = list(range(nodes))
    rng.shuffle(order)
    filled = [0] * nodes
    cursor = 0

    pod_items: list[dict[str, Any]] = []
    service_items: list[dict[str, Any]] = []
    slice_items: list[dict[str, Any]] = []
    node_ports = iter(_NODE_PORTS)
    for app in range(apps):
        name = f"app-{app:05d}"
        namespace = namespaces[app]
        template = _token(f"{seed}/{namespace}/{name}", 10)
        metrics = app % 5 == 0
        named_target = app % 2 == 0
        members: list[dict[str, Any]] = []
        taken: set[str] = set()
        for replica in range(sizes[app]):
            # Find the next node with room (a full node is skipped).
            while filled[order[cursor % nodes]] >= _MAX_PODS_PER_NODE:
                cursor += 1
            node = order[cursor % nodes]
            cursor += 1
            ip = str(IPv4Address(_POD_BASE + node * 256 + 2 + filled[node]))
            filled[node] += 1
            pod = _pod(
                rng,
                _unique(f"{name}-{template}-", f"{seed}/{namespace}/{name}/{replica}", taken),
                namespace,
                name,
                template,
                node_names[node],
                node,
                ip,
                metrics,
            )
            pod_items.append(pod)
            members.append(pod)
        if app >= services:
            continue  # pods=… with services=0: pods that no Service fronts
        node_port = None
        if app % 40 == 7:
            node_port = next(node_ports, None)
        service = _service(name, namespace, app, metrics, named_target, node_port)
        service_items.append(service)
        slice_items.extend(_slices(seed, service, members, metrics))

    items += pod_items + service_items + slice_items
    lines = ",\n".join(json.dumps(item, separators=(",", ":")) for item in items)
    return f'{{"apiVersion":"v1","kind":"List","metadata":{{}},"items":[\n{lines}\n]}}\n'


def _check(nodes: int, pods: int, services: int) -> None:
    if not 1 <= nodes <= _MAX_NODES:
        raise KubehopError(f"--nodes {nodes}: must be 1-{_MAX_NODES} (a /24 each in 10.128.0.0/9)")
    if pods < 0 or services < 0:
        raise KubehopError("--pods and --services must not be negative")
    if pods > nodes * _MAX_PODS_PER_NODE:
        raise KubehopError(
            f"--pods {pods}: {nodes} node{'s' if nodes != 1 else ''} hold"
            f"{'s' if nodes == 1 else ''} at most {nodes * _MAX_PODS_PER_NODE}"
            f" ({_MAX_PODS_PER_NODE} a /24 podCIDR; Kubernetes' default is 110 a node)"
        )
    if services > _MAX_SERVICES:
        raise KubehopError(f"--services {services}: 10.96.0.0/12 holds at most {_MAX_SERVICES}")


def _token(key: str, length: int) -> str:
    """Random-looking name characters from `key`, in generateName's alphabet."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def _unique(prefix: str, key: str, taken: set[str]) -> str:
    """`prefix` + 5 characters from `key`, rehashed until not in `taken`."""
    attempt = 0
    while (name := prefix + _token(f"{key}#{attempt}", 5)) in taken:
        attempt += 1
    taken.add(name)
    return name


def _uid(key: str) -> str:
    h = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _app_sizes(rng: random.Random, apps: int, pods: int) -> list[int]:
    """Replica counts: most apps small, a few large (a long-tailed spread)."""
    sizes = [0] * apps
    base = 1 if pods >= apps else 0
    for app in range(min(apps, pods)):
        sizes[app] = base
    rest = pods - base * apps if base else pods
    if rest > 0:
        weights = [rng.paretovariate(1.5) for _ in range(apps)]
        for app in rng.choices(range(apps), weights=weights, k=rest):
            sizes[app] += 1
    return sizes


def _namespaces(apps: int) -> list[str]:
    """Apps by team: one namespace per 500 apps, the first being default."""
    teams = max(1, min(50, apps // 500))
    names = ["default"] + [f"team-{t:02d}" for t in range(1, teams)]
    return [names[app % teams] for app in range(apps)]


def _configuration() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clusterCIDR": "10.128.0.0/9",
            "iptables": {"masqueradeAll": False, "masqueradeBit": 14},
            "nodePortAddresses": [],
        },
        {
            "apiVersion": "kubehop.dev/v1alpha1",
            "kind": "CNIConfig",
            "metadata": {"name": "cni"},
            "spec": {"plugin": "host-gw", "bridge": "cni0", "mtu": 1500, "hairpinMode": True},
        },
        {
            "apiVersion": "kubehop.dev/v1alpha1",
            "kind": "ExternalClient",
            "metadata": {"name": "client"},
            "spec": {"ip": _CLIENT},
        },
    ]


def _node(index: int, name: str) -> dict[str, Any]:
    cidr = f"{IPv4Address(_POD_BASE + index * 256)}/24"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": _uid(f"node/{name}"),
            "creationTimestamp": _STARTED,
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": f"zone-{'abc'[index % 3]}",
            },
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": str(IPv4Address(_NODE_BASE + index))},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": "v1.31.4", "kubeProxyVersion": "v1.31.4"},
        },
    }


def _pod(
    rng: random.Random,
    name: str,
    namespace: str,
    app: str,
    template: str,
    node_name: str,
    node: int,
    ip: str,
    metrics: bool,
) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    if metrics:
        ports.append({"name": "metrics", "containerPort": 9090, "protocol": "TCP"})
    # About one pod in a hundred is failing its readiness probe.
    ready = "False" if rng.random() < 0.01 else "True"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid(f"pod/{namespace}/{name}"),
            "creationTimestamp": _STARTED,
            "labels": {"app": app, "pod-template-hash": template},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-{template}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node_name,
            "containers": [
                {
                    "name": "app",
                    "image": _IMAGE,
                    "args": ["netexec", "--http-port=8080"],
                    "ports": ports,
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                }
            ],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready},
            ],
            "hostIP": str(IPv4Address(_NODE_BASE + node)),
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": _STARTED,
        },
    }


def _service(
    name: str, namespace: str, app: int, metrics: bool, named_target: bool, node_port: int | None
) -> dict[str, Any]:
    cluster_ip = str(IPv4Address(_SERVICE_BASE + app))
    ports: list[dict[str, Any]] = [
        {
            "name": "http",
            "port": 80,
            "protocol": "TCP",
            "targetPort": "http" if named_target else 8080,
        }
    ]
    if metrics:
        ports.append({"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090})
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
        "ports": ports,
        "selector": {"app": name},
        "sessionAffinity": "None",
    }
    if node_port is not None:
        spec["type"] = "NodePort"
        spec["externalTrafficPolicy"] = "Local" if app % 80 == 7 else "Cluster"
        ports[0]["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid(f"service/{namespace}/{name}"),
            "creationTimestamp": _STARTED,
            "labels": {"app": name},
        },
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def _slices(
    seed: int, service: dict[str, Any], members: list[dict[str, Any]], metrics: bool
) -> list[dict[str, Any]]:
    name = service["metadata"]["name"]
    namespace = service["metadata"]["namespace"]
    ports: list[dict[str, Any]] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    if metrics:
        ports.append({"name": "metrics", "port": 9090, "protocol": "TCP"})
    endpoints = []
    for pod in members:
        ready = pod["status"]["conditions"][-1]["status"] == "True"
        endpoints.append(
            {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": pod["spec"]["nodeName"],
                "targetRef": {
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": namespace,
                    "uid": pod["metadata"]["uid"],
                },
            }
        )
    slices = []
    taken: set[str] = set()
    # The controller writes a placeholder slice for a Service with no pods.
    for start in range(0, max(len(endpoints), 1), _SLICE_SIZE):
        slice_name = _unique(f"{name}-", f"{seed}/{namespace}/{name}/{start}", taken)
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name,
                    "namespace": namespace,
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": (
                            "endpointslice-controller.k8s.io"
                        ),
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "name": name,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "addressType": "IPv4",
                "ports": ports if endpoints else None,
                "endpoints": endpoints[start : start + _SLICE_SIZE],
            }
        )
    return slices
