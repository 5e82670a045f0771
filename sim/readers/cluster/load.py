"""Read cluster files into one `Cluster`: text, documents, objects, each kind, then the whole.

The stages live in their own modules; this one runs them in order, tells
`Progress` how far it is, and keeps the cyclic garbage collector out of the way.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from model.cluster import Cluster, EndpointSlice, Service, ServiceType
from model.errors import ClusterFileError
from sim.readers.cluster.checks import (
    check_addresses,
    check_pod_cidrs,
    check_pods_in_cidrs,
    check_selectors,
    check_service_ips,
    check_services,
    check_slices,
    covering,
    infer_cluster_cidr,
    infer_cni,
    unique,
)
from sim.readers.cluster.config import cni, kube_proxy, service_cidrs
from sim.readers.cluster.documents import parse_documents
from sim.readers.cluster.endpoints import endpoints_key, mirrored_slices
from sim.readers.cluster.fields import FieldChecker
from sim.readers.cluster.files import dump_files, read_text
from sim.readers.cluster.hosts import client, node
from sim.readers.cluster.messages import At, Report
from sim.readers.cluster.objects import API_VERSIONS, CONFIG_MAP_KUBE_PROXY, by_kind, flatten
from sim.readers.cluster.pods import PodReader
from sim.readers.cluster.quoting import show
from sim.readers.cluster.services import service
from sim.readers.cluster.slices import endpoint_slice

__all__ = [
    "Progress",
    "load_cluster_file",
    "load_cluster_files",
    "load_dump",
    "parse_cluster",
    "parse_clusters",
]

Progress = Callable[[str, int, int], None]
"""Told `(stage, done, total)` while a dump loads: bytes read, then objects checked."""


def load_cluster_file(path: str | os.PathLike[str], progress: Progress | None = None) -> Cluster:
    """Read and check the cluster file at `path`."""
    return load_cluster_files([path], progress=progress)


def load_cluster_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> Cluster:
    """Read and check the files at `paths` as one cluster; `name` names them all in messages."""
    files = [(read_text(path), show(os.fspath(path))) for path in paths]
    if not files:
        raise ClusterFileError(f"{name or 'cluster'}: no cluster files given")
    return parse_clusters(files, name=name, progress=progress)


def load_dump(
    paths: Sequence[str | os.PathLike[str]], *, progress: Progress | None = None
) -> Cluster:
    """The cluster in the files and directories at `paths`, checked as one."""
    files = dump_files(paths)
    name = os.fspath(paths[0]) if len(paths) == 1 else f"{len(files)} files"
    return load_cluster_files(files, name=name, progress=progress)


def parse_cluster(text: str, source: str, progress: Progress | None = None) -> Cluster:
    """Parse and check a cluster file's `text`; `source` names it in messages."""
    return parse_clusters([(text, source)], progress=progress)


def parse_clusters(
    files: Sequence[tuple[str, str]], *, name: str | None = None, progress: Progress | None = None
) -> Cluster:
    """Parse and check several files' `(text, source)` as one cluster (a directory of dumps)."""
    # A big file becomes millions of dicts and models, none of them in a
    # reference cycle; the cyclic collector would rescan them again and again
    # while they are built (three quarters of json.loads' time on 150,000 pods).
    shown = [(text, show(source)) for text, source in files]
    label = show(name) if name is not None else shown[0][1] if len(shown) == 1 else "cluster"
    collecting = gc.isenabled()
    gc.disable()
    try:
        inputs = [(text.removeprefix("\ufeff"), source) for text, source in shown]
        return _cluster(inputs, Report(label), progress)
    finally:
        if collecting:
            gc.enable()


def _cluster(inputs: list[tuple[str, str]], report: Report, progress: Progress | None) -> Cluster:
    found = by_kind(report, _objects(inputs, report, progress))
    check = FieldChecker(report)
    counted = _Counter(progress, sum(len(found.get(kind, ())) for kind in API_VERSIONS))
    proxies = found.get("KubeProxyConfiguration", []) or found.get(CONFIG_MAP_KUBE_PROXY, [])
    proxy = kube_proxy(check, proxies)
    cni_config = cni(check, found.get("CNIConfig", []))
    nodes = [
        placed
        for at, obj in counted(found.get("Node", []))
        if (placed := node(check, at, obj)) is not None
    ]
    unique(report, "Node", [(at, n.name, None) for at, n in nodes])
    nodes_by_name = {n.name: n for _, n in nodes}
    clients = [client(check, at, obj) for at, obj in found.get("ExternalClient", [])]
    unique(report, "ExternalClient", [(at, c.name, None) for at, c in clients])
    pod_reader = PodReader(check)
    pods = [
        parsed
        for at, obj in counted(found.get("Pod", []))
        if (parsed := pod_reader.pod(at, obj, nodes_by_name)) is not None
    ]
    unique(report, "Pod", [(at, p.name, p.namespace) for at, p in pods])
    services = [service(check, at, obj) for at, obj in counted(found.get("Service", []))]
    unique(report, "Service", [(at, s.name, s.namespace) for at, s in services])
    slices = [
        slice_
        for at, obj in counted(found.get("EndpointSlice", []))
        if (slice_ := endpoint_slice(check, at, obj)) is not None
    ]
    unique(report, "EndpointSlice", [(at, s.name, s.namespace) for at, s in slices])
    mirrored, told = _mirrored(check, services, slices, counted(found.get("Endpoints", [])))
    slices += mirrored
    services = _endpoints_known(check, services, told)
    counted.finish()

    owners = check_addresses(report, nodes, pods, clients)
    check_pod_cidrs(report, nodes)
    check_pods_in_cidrs(report, pods, nodes_by_name)
    check_services(report, services)
    check_service_ips(report, services, owners)
    check_selectors(report, services, pods)
    pod_names = {(p.namespace, p.name) for _, p in pods}
    check_slices(report, slices, services, nodes_by_name, pod_names)
    proxy = infer_cluster_cidr(report, proxy, nodes, pods)
    cni_config = infer_cni(report, cni_config, nodes, pods)

    # From the nodes alone: a client may be anywhere, and one on the Internet
    # would stretch the network over half the address space.
    node_network = None
    addresses = [int(n.internal_ip) for _, n in nodes]
    if addresses:
        node_network = covering(min(addresses), max(addresses), floor=24)
    return Cluster(
        nodes=tuple(n for _, n in nodes),
        pods=tuple(p for _, p in pods),
        services=tuple(s for _, s in services),
        endpoint_slices=tuple(s for _, s in slices),
        kube_proxy=proxy,
        cni=cni_config,
        clients=tuple(c for _, c in clients),
        node_network=node_network,
        service_cidrs=service_cidrs(check, found.get("ServiceCIDR", [])),
        warnings=report.rendered_warnings(),
    )


def _objects(
    inputs: list[tuple[str, str]], report: Report, progress: Progress | None
) -> Iterator[tuple[At, dict[str, Any]]]:
    """Every object of every file, `kind: List`s opened, in file order."""
    total = sum(len(text) for text, _ in inputs)
    done = 0
    alone = len(inputs) == 1
    for index, (text, source) in enumerate(inputs):
        if progress is not None:
            progress(f"reading {source}", done, total)
        docs, locator = parse_documents(text, source, alone=alone)
        report.places.append((source, locator))
        done += len(text)
        if progress is not None:
            progress(f"reading {source}", done, total)
        found = False
        for number, doc in enumerate(docs):
            if doc is None:
                continue
            found = True
            yield from flatten(report, index, doc, number)
        if not found and alone:
            raise ClusterFileError(
                f"{source}: file is empty (expected Kubernetes objects in YAML or JSON)"
            )


def _mirrored(
    check: FieldChecker,
    services: list[tuple[At, Service]],
    slices: list[tuple[At, EndpointSlice]],
    endpoints: Iterator[tuple[At, dict[str, Any]]],
) -> tuple[list[tuple[At, EndpointSlice]], set[tuple[str, str]]]:
    """Slices mirrored from the Endpoints of Services the dump has no EndpointSlices of, and
    every Service whose endpoints the files tell (by slices or by Endpoints, if empty ones)."""
    sliced = {(s.namespace, s.service) for _, s in slices}
    wanting: dict[tuple[object, object], Service] = {
        (s.namespace, s.name): s
        for _, s in services
        if s.type is not ServiceType.EXTERNAL_NAME and (s.namespace, s.name) not in sliced
    }
    mirrored: list[tuple[At, EndpointSlice]] = []
    mirrored_services: set[tuple[str, str]] = set()
    for at, obj in endpoints:
        # Only the Endpoints of a Service that wants them are read (and checked):
        # most of a big dump's are the twins of slices it has.
        wanted = wanting.get(endpoints_key(obj))
        if wanted is None:
            continue
        made = mirrored_slices(check, at, obj, wanted)
        if made is not None:
            # Endpoints with no address say the Service has none: told, not unknown.
            mirrored += [(at, slice_) for slice_ in made]
            mirrored_services.add((wanted.namespace, wanted.name))
    if mirrored_services:
        count = len(mirrored_services)
        which = "1 Service has" if count == 1 else f"{count} Services have"
        check.warn(
            "configuration warnings",
            None,
            (),
            f"{which} no EndpointSlice in the files: read from their v1 Endpoints, as the"
            " EndpointSlice mirroring controller would",
        )
    return mirrored, sliced | mirrored_services


def _endpoints_known(
    check: FieldChecker, services: list[tuple[At, Service]], told: set[tuple[str, str]]
) -> list[tuple[At, Service]]:
    """`services`, those whose endpoints nothing in the files tells marked unknown.

    A Service with a selector gets its slices from its pods; one without a
    selector has only what the dump holds, and with neither EndpointSlices nor
    Endpoints its endpoints are unknown, not none.
    """
    known: list[tuple[At, Service]] = []
    for at, svc in services:
        if (
            svc.selector is None
            and svc.type is not ServiceType.EXTERNAL_NAME
            and (svc.namespace, svc.name) not in told
        ):
            check.warn(
                "Services whose endpoints are unknown",
                at,
                (),
                "no selector, and neither an EndpointSlice nor an Endpoints object of it in the"
                " files, so its endpoints are unknown (dump them too: kubectl get"
                " endpointslices,endpoints -A -o yaml)",
            )
            svc = svc.model_copy(update={"endpoints_known": False})
        known.append((at, svc))
    return known


class _Counter:
    """Counts objects as they are checked, telling `progress` every 1024."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def __call__(
        self, items: list[tuple[At, dict[str, Any]]]
    ) -> Iterator[tuple[At, dict[str, Any]]]:
        if self.progress is None:
            yield from items
            return
        for item in items:
            yield item
            self.done += 1
            if not self.done & 1023:
                self.progress("checking objects", self.done, self.total)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress("checking objects", self.total, self.total)
