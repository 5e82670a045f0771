"""Read cluster files into one `Cluster`: text, documents, objects, each kind, then the whole.

The stages live in their own modules; this one runs them in order, tells
`Progress` how far it is, and keeps the cyclic garbage collector out of the way.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from model.cluster import (
    Cluster,
    CNIConfig,
    EndpointSlice,
    ExternalClient,
    KubeProxyConfig,
    Node,
    Pod,
    Service,
    ServiceType,
)
from model.errors import ClusterFileError
from sim.collector import paused
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
from sim.readers.cluster.messages import At, Noted, Report
from sim.readers.cluster.objects import (
    API_VERSIONS,
    CONFIG_MAP_KUBE_PROXY,
    ByKind,
    by_kind,
    flatten,
    sorted_kind,
)
from sim.readers.cluster.pods import PodReader
from sim.readers.cluster.quoting import show
from sim.readers.cluster.services import service
from sim.readers.cluster.slices import endpoint_slice
from sim.readers.cluster.stream import FileLocator, JsonList, Unstreamable, starts_an_object

__all__ = [
    "Progress",
    "collector_off",
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
    """Read and check the files at `paths` as one cluster; `name` names them all in messages.

    A JSON file is read item by item (see `stream`), so a big dump never lives
    in memory whole; if anything in the files is wrong, or a JSON file is not
    the List kubectl writes, they are all read again the usual way, which says
    exactly what is wrong.
    """
    if paths and any(_streams(path) for path in paths):
        try:
            return _streamed(paths, name, progress)
        except (ClusterFileError, Unstreamable, OSError):
            pass  # read whole below, which names the file and the mistake
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
    shown = [(text, show(source)) for text, source in files]
    label = show(name) if name is not None else shown[0][1] if len(shown) == 1 else "cluster"
    with collector_off():
        inputs = [(text.removeprefix("\ufeff"), source) for text, source in shown]
        return _cluster(inputs, Report(label), progress)


_FREEZE_OVER = 100_000
"""Objects made by one load past which they are kept from the collector's scans."""


@contextmanager
def collector_off(freeze_over: int = _FREEZE_OVER) -> Iterator[None]:
    """The cyclic garbage collector off while a cluster is read, and off the big ones after
    (past `freeze_over` new objects).

    A big file becomes millions of dicts and models, none of them in a reference
    cycle; the collector would rescan them again and again while they are built
    (three quarters of json.loads' time on 150,000 pods). Turned back on, it would
    still look at each once per generation soon after (0.8 s a time on the 209 MB
    file, in whatever runs next), so past 100,000 new objects everything alive in
    the process is frozen (`gc.freeze`) into the generation it never scans. Frozen
    objects are still freed when nothing refers to them; only a reference cycle alive
    then and dropped later is never collected (a cluster has none; the price of the
    others is paid once per big load).
    """
    with paused(freeze_over):
        yield


def _cluster(inputs: list[tuple[str, str]], report: Report, progress: Progress | None) -> Cluster:
    found = by_kind(report, _objects(inputs, report, progress))
    check = FieldChecker(report)
    counted = _Counter(progress, sum(len(found.get(kind, ())) for kind in API_VERSIONS))
    proxy, cni_config = _configs(check, found)
    nodes = [
        placed
        for at, obj in counted(found.get("Node", []))
        if (placed := node(check, at, obj)) is not None
    ]
    unique(report, "Node", [(at, n.name, None) for at, n in nodes])
    nodes_by_name = {n.name: n for _, n in nodes}
    clients = _clients(check, found)
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
    services, slices = _with_endpoints(check, services, slices, counted(found.get("Endpoints", [])))
    counted.finish()
    return _checked(
        check, found, proxy, cni_config, nodes, nodes_by_name, clients, pods, services, slices
    )


def _configs(check: FieldChecker, found: ByKind) -> tuple[KubeProxyConfig, CNIConfig]:
    proxies = found.get("KubeProxyConfiguration", []) or found.get(CONFIG_MAP_KUBE_PROXY, [])
    return kube_proxy(check, proxies), cni(check, found.get("CNIConfig", []))


def _clients(check: FieldChecker, found: ByKind) -> list[tuple[At, ExternalClient]]:
    clients = [client(check, at, obj) for at, obj in found.get("ExternalClient", [])]
    unique(check.report, "ExternalClient", [(at, c.name, None) for at, c in clients])
    return clients


def _with_endpoints(
    check: FieldChecker,
    services: list[tuple[At, Service]],
    slices: list[tuple[At, EndpointSlice]],
    endpoints: Iterable[tuple[At, dict[str, Any]]],
) -> tuple[list[tuple[At, Service]], list[tuple[At, EndpointSlice]]]:
    """`services` and `slices` with what v1 Endpoints tell of Services without slices."""
    mirrored, told = _mirrored(check, services, slices, endpoints)
    return _endpoints_known(check, services, told), slices + mirrored


def _checked(
    check: FieldChecker,
    found: ByKind,
    proxy: KubeProxyConfig,
    cni_config: CNIConfig,
    nodes: list[tuple[At, Node]],
    nodes_by_name: dict[str, Node],
    clients: list[tuple[At, ExternalClient]],
    pods: list[tuple[At, Pod]],
    services: list[tuple[At, Service]],
    slices: list[tuple[At, EndpointSlice]],
) -> Cluster:
    """The cluster of objects each checked alone, checked as a whole."""
    report = check.report
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
        objects = _file_objects(report, index, text, source, alone)
        done += len(text)
        if progress is not None:
            progress(f"reading {source}", done, total)
        yield from objects


def _file_objects(
    report: Report, index: int, text: str, source: str, alone: bool
) -> Iterator[tuple[At, dict[str, Any]]]:
    """The objects of file `index`, parsed now (told where to find their lines), read lazily."""
    docs, locator = parse_documents(text, source, alone=alone)
    report.places.append((source, locator))
    return _doc_objects(report, index, docs, source, alone)


def _doc_objects(
    report: Report, index: int, docs: list[Any], source: str, alone: bool
) -> Iterator[tuple[At, dict[str, Any]]]:
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


def _streams(path: str | os.PathLike[str]) -> bool:
    """Whether the file at `path` is read item by item: a regular file holding a JSON object."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
    return regular and starts_an_object(Path(path))


def _streamed(
    paths: Sequence[str | os.PathLike[str]], name: str | None, progress: Progress | None
) -> Cluster:
    """The cluster in `paths`, JSON files read item by item and each object checked as it
    comes; ClusterFileError (without a place) or Unstreamable if anything is amiss."""
    # Named as load_cluster_files and parse_clusters name them.
    sources = [show(show(os.fspath(path))) for path in paths]
    label = show(name) if name is not None else sources[0] if len(sources) == 1 else "cluster"
    report = Report(label)
    report.unsaid = True
    reading = _Reading(report)
    sizes = [os.stat(path).st_size for path in paths]
    total = sum(sizes)
    done = 0

    def told(size: int) -> None:
        nonlocal done
        done += size
        if progress is not None:
            progress(f"reading {source}", min(done, total), total)

    with collector_off():
        for index, path in enumerate(paths):
            source = sources[index]
            if progress is not None:
                progress(f"reading {source}", done, total)
            if _streams(path):
                with open(path, "rb") as file:
                    listed = JsonList(file, told)
                    report.places.append((source, FileLocator(Path(path), listed)))
                    for at, obj in _list_objects(report, index, listed):
                        reading.take(at, obj)
            else:
                text = read_text(path).removeprefix("\ufeff")
                for at, obj in _file_objects(report, index, text, source, len(paths) == 1):
                    reading.take(at, obj)
                told(sizes[index])
        return reading.cluster(progress)


def _list_objects(
    report: Report, index: int, listed: JsonList
) -> Iterator[tuple[At, dict[str, Any]]]:
    """The objects in the streamed JSON file `index`, as `flatten` would find them."""
    members = listed.members
    for number, item in listed.items():
        # The common case inline, as in flatten: an object that is not itself a list.
        if type(item) is dict:
            kind = item.get("kind")
            if type(kind) is str and not kind.endswith("List"):
                meta = item.get("metadata")
                name = meta.get("name") if type(meta) is dict else None
                yield At(0, ("items", number), kind, None, name, index), item
                continue
        # flatten gives an item without a kind the List's, which kubectl
        # writes after the items: known by now, or the file is read whole.
        outer = members.get("kind")
        if type(outer) is str:
            implied = outer.removesuffix("List") or None
        elif type(item) is dict and "kind" not in item:
            raise Unstreamable
        else:
            implied = None  # not looked at: the item names its own kind, or is refused
        yield from flatten(report, index, item, 0, ("items", number), implied)
    if not listed.streamed:
        # One object, not a List: as small as any, read whole.
        yield from flatten(report, index, members, 0)
        return
    # flatten opens an object as a List only if its kind says so.
    outer = members.get("kind")
    if type(outer) is not str or not outer.endswith("List"):
        raise Unstreamable


class _Reading:
    """Objects checked as they are read, so no file's objects live at once.

    A kind's objects are checked in file order, as `_cluster` checks them, and
    each kind's warnings are kept apart and joined in `_cluster`'s order. A pod
    whose node has not been read yet waits for the end, then takes its place.
    Only a cluster that reads without a mistake comes out of here; for any
    mistake the files are read again by `_cluster`, which tells the same first
    mistake as ever.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        self.check = FieldChecker(report)
        self.found: ByKind = {}
        self.counted = 0
        self.nodes: list[tuple[At, Node]] = []
        self.nodes_by_name: dict[str, Node] = {}
        self.pod_reader = PodReader(self.check)
        self.pods: list[tuple[At, Pod]] = []
        # (place in pods, place in pod warnings, the pod) of pods that wait for their node.
        self.waiting: list[tuple[int, int, At, dict[str, Any]]] = []
        self.services: list[tuple[At, Service]] = []
        self.slices: list[tuple[At, EndpointSlice]] = []
        self.noted_nodes: list[Noted] = []
        self.noted_pods: list[Noted] = []
        self.noted_services: list[Noted] = []
        self.noted_slices: list[Noted] = []

    def take(self, at: At, obj: dict[str, Any]) -> None:
        """Check the object `obj` found at `at`, or keep it for the end."""
        kind = at.kind
        # The usual object inline: a kind kubehop reads, metadata, its API version.
        expected = API_VERSIONS.get(kind)
        if expected is None or "metadata" not in obj or obj.get("apiVersion") != expected:
            sorted_ = sorted_kind(self.report, at, obj, self.found)
            if sorted_ is None:
                return
            kind = sorted_
        self.counted += 1
        report = self.report
        check = self.check
        if kind == "Pod":
            spec = obj.get("spec")
            wanted = spec.get("nodeName") if type(spec) is dict else None
            if type(wanted) is not str or wanted not in self.nodes_by_name:
                self.waiting.append((len(self.pods), len(self.noted_pods), at, obj))
                return
            report.noted = self.noted_pods
            parsed = self.pod_reader.pod(at, obj, self.nodes_by_name)
            if parsed is not None:
                self.pods.append(parsed)
        elif kind == "EndpointSlice":
            report.noted = self.noted_slices
            slice_ = endpoint_slice(check, at, obj)
            if slice_ is not None:
                self.slices.append(slice_)
        elif kind == "Service":
            report.noted = self.noted_services
            self.services.append(service(check, at, obj))
        elif kind == "Node":
            report.noted = self.noted_nodes
            placed = node(check, at, obj)
            if placed is not None:
                self.nodes.append(placed)
                self.nodes_by_name[placed[1].name] = placed[1]
        else:  # few and small, or needed whole (configuration, clients, Endpoints)
            self.found.setdefault(kind, []).append((at, obj))

    def cluster(self, progress: Progress | None) -> Cluster:
        """The cluster, once every file is read: what waited checked, then the whole."""
        report = self.report
        check = self.check
        noted_configs: list[Noted] = []
        report.noted = noted_configs
        proxy, cni_config = self._configs()
        unique(report, "Node", [(at, n.name, None) for at, n in self.nodes])
        noted_clients: list[Noted] = []
        report.noted = noted_clients
        clients = _clients(check, self.found)
        pods, noted_pods = self._pods()
        unique(report, "Pod", [(at, p.name, p.namespace) for at, p in pods])
        unique(report, "Service", [(at, s.name, s.namespace) for at, s in self.services])
        unique(report, "EndpointSlice", [(at, s.name, s.namespace) for at, s in self.slices])
        # Each kind's warnings in _cluster's order; those of the checks across
        # kinds follow.
        report.noted = (
            noted_configs
            + self.noted_nodes
            + noted_clients
            + noted_pods
            + self.noted_services
            + self.noted_slices
        )
        endpoints = self.found.get("Endpoints", [])
        services, slices = _with_endpoints(check, self.services, self.slices, endpoints)
        if progress is not None:
            progress("checking objects", self.counted, self.counted)
        return _checked(
            check,
            self.found,
            proxy,
            cni_config,
            self.nodes,
            self.nodes_by_name,
            clients,
            pods,
            services,
            slices,
        )

    def _configs(self) -> tuple[KubeProxyConfig, CNIConfig]:
        return _configs(self.check, self.found)

    def _pods(self) -> tuple[list[tuple[At, Pod]], list[Noted]]:
        """Every pod in file order, those that waited for their node read now, and their
        warnings in the same order."""
        if not self.waiting:
            return self.pods, self.noted_pods
        pods: list[tuple[At, Pod]] = []
        noted: list[Noted] = []
        self.report.noted = noted
        done = seen = 0
        for place, noted_place, at, obj in self.waiting:
            pods += self.pods[done:place]
            noted += self.noted_pods[seen:noted_place]
            done, seen = place, noted_place
            parsed = self.pod_reader.pod(at, obj, self.nodes_by_name)
            if parsed is not None:
                pods.append(parsed)
        pods += self.pods[done:]
        noted += self.noted_pods[seen:]
        return pods, noted


def _mirrored(
    check: FieldChecker,
    services: list[tuple[At, Service]],
    slices: list[tuple[At, EndpointSlice]],
    endpoints: Iterable[tuple[At, dict[str, Any]]],
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
