"""Read a cluster file into a `Cluster`, checking it the way the API server would.

A cluster file is what `kubectl get -o yaml` (or `-o json`) prints: a `kind: List`
or a stream of YAML documents holding Nodes, Pods, Services and EndpointSlices,
plus a KubeProxyConfiguration and kubehop's own CNIConfig and ExternalClient.
Objects of other kinds and fields kubehop has no use for are skipped, so a dump
of a real cluster loads as it is.

Every mistake is one `ClusterFileError` line, `file:line: Kind ns/name: field: reason`.
Things a real cluster may legitimately contain but that change what the network
does become `Cluster.warnings`, in the same shape.

Deriving EndpointSlices from selectors is the EndpointSlice controller's job and
lives in `sim.cluster.endpointslices`; this module only reads and checks.
"""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import stat
import sys
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from ipaddress import AddressValueError, IPv4Address, IPv4Network, IPv6Address, NetmaskValueError
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn

import yaml

from model.cluster import (
    Cluster,
    CNIConfig,
    CNIPlugin,
    Container,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    ExternalClient,
    KubeProxyConfig,
    Node,
    OwnerRef,
    Pod,
    ProxyMode,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
)
from model.errors import ClusterFileError, KubehopError
from model.packet import Proto

__all__ = [
    "Progress",
    "load_cluster_file",
    "load_cluster_files",
    "parse_cluster",
    "parse_clusters",
]

# libyaml's C parser is about ten times faster than the pure-Python one.
_FastLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_FastLoader):  # type: ignore[valid-type,misc]
    """Safe YAML that refuses a key given twice in one mapping, as kubectl does.

    PyYAML keeps the last value and drops the first without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str"):
                first = seen.setdefault(key_node.value, key_node)
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key_node.value!r} appears twice in one mapping"
                        f" (first at line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


# Kubernetes' validation patterns (k8s.io/apimachinery/pkg/util/validation).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_IFNAME = re.compile(r"[^/\s:]{1,15}")

_SUBDOMAIN_RULE = (
    "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.',"
    " starting and ending with a letter or digit, at most 253 characters"
)
_LABEL_RULE = (
    "must be a DNS-1123 label: lowercase letters, digits and '-',"
    " starting and ending with a letter or digit, at most 63 characters"
)
_DNS1035_RULE = (
    "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter,"
    " ending with a letter or digit, at most 63 characters"
)
_PORT_NAME_RULE = (
    "must be an IANA_SVC_NAME: at most 15 lowercase letters, digits and '-',"
    " with at least one letter, no '--', starting and ending with a letter or digit"
)

# The API server's default --service-node-port-range.
NODE_PORT_RANGE = (30000, 32767)
"""The NodePort range kubehop accepts (Kubernetes' default)."""

# The same warning for thousands of objects would bury the rest: after this
# many of one sort, one summary line stands for the others.
_WARNINGS_PER_SORT = 10

_PROTOCOLS = {"TCP": Proto.TCP, "UDP": Proto.UDP, "SCTP": Proto.SCTP}

Key = str | int
"""One step of a path into a document: a mapping key or a list index."""


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
    files = [(read_text(path), _show(os.fspath(path))) for path in paths]
    if not files:
        raise ClusterFileError(f"{name or 'cluster'}: no cluster files given")
    return parse_clusters(files, name=name, progress=progress)


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str = "a cluster file",
    error: type[KubehopError] = ClusterFileError,
    ask_what: bool = False,
) -> str:
    """A user's file as text, or one line naming the file and what is wrong with it.

    With `ask_what`, a file that is not text is answered with a question
    ("is this `iptables-save` output?"): people pass the wrong dump more often
    than a mis-encoded one.
    """
    name = _show(os.fspath(path))
    try:
        # A pipe (`--cluster <(kubectl get … -o yaml)`) is read; a device such
        # as /dev/zero would never end.
        if stat.S_ISCHR(mode := os.stat(path).st_mode) or stat.S_ISBLK(mode):
            raise error(f"{name}: is a device, not {what}")
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not {what}") from None
    except PermissionError:
        raise error(f"{name}: permission denied") from None
    except OSError as err:
        raise error(f"{name}: cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        if ask_what:
            raise error(f"{name}:{line}: not text (is this {what}?)") from None
        raise error(
            f"{name}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"
        ) from None


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
    shown = [(text, _show(source)) for text, source in files]
    label = _show(name) if name is not None else shown[0][1] if len(shown) == 1 else "cluster"
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Loader(shown, label, progress).cluster()
    finally:
        if collecting:
            gc.enable()


# --- Where a field is: line numbers, computed only when a message needs one ---------


class _Locator(ABC):
    """Finds the line of a path in the file, parsing it again only when asked."""

    @abstractmethod
    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        """The line of the deepest element of `keys` that exists in document `doc`."""


class _YamlLocator(_Locator):
    def __init__(self, text: str) -> None:
        self._text = text
        self._docs: list[yaml.Node] | None = None

    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        if self._docs is None:
            self._docs = list(yaml.compose_all(self._text, Loader=_YamlLoader))
        if doc >= len(self._docs):
            return 1
        node = self._docs[doc]
        line = node.start_mark.line + 1
        for key in keys:
            if isinstance(node, yaml.MappingNode) and isinstance(key, str):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                        # A mapping entry is reported at its key: in block style
                        # a mapping or list value starts on the next line.
                        line = key_node.start_mark.line + 1
                        node = value_node
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    break
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line


class _JsonLocator(_Locator):
    """Walks the JSON text to a path, skipping values with the C decoder.

    The offsets of list elements are remembered, so reporting on thousands of
    items of one `kind: List` walks the file once, not once per item.
    """

    _WS = re.compile(r"[ \t\n\r]*")

    def __init__(self, text: str) -> None:
        self._text = text
        self._decoder = json.JSONDecoder()
        self._elements: dict[int, tuple[list[int], int]] = {}
        self._newlines: list[int] | None = None

    def _skip(self, pos: int) -> int:
        match = self._WS.match(self._text, pos)
        return match.end() if match else pos

    def _member(self, pos: int, key: str) -> tuple[int, int] | None:
        """(key offset, value offset) of `key` in the object at `pos`."""
        text = self._text
        pos = self._skip(pos + 1)
        while text.startswith('"', pos):
            name, end = self._decoder.raw_decode(text, pos)
            value = self._skip(self._skip(end) + 1)
            if name == key:
                return pos, value
            _, end = self._decoder.raw_decode(text, value)
            end = self._skip(end)
            if not text.startswith(",", end):
                return None
            pos = self._skip(end + 1)
        return None

    def _element(self, pos: int, index: int) -> int | None:
        """The offset of element `index` of the list at `pos`."""
        text = self._text
        offsets, resume = self._elements.get(pos, ([], self._skip(pos + 1)))
        while len(offsets) <= index and resume >= 0:
            if text.startswith("]", resume):
                resume = -1
                break
            offsets.append(resume)
            _, end = self._decoder.raw_decode(text, resume)
            end = self._skip(end)
            resume = self._skip(end + 1) if text.startswith(",", end) else -1
        self._elements[pos] = (offsets, resume)
        return offsets[index] if index < len(offsets) else None

    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        text = self._text
        pos = self._skip(0)
        report = pos
        for key in keys:
            if isinstance(key, str) and text.startswith("{", pos):
                found = self._member(pos, key)
                if found is None:
                    break
                report, pos = found
            elif isinstance(key, int) and text.startswith("[", pos):
                element = self._element(pos, key)
                if element is None:
                    break
                report = pos = element
            else:
                break
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", text)]
        return bisect_right(self._newlines, report) + 1


# --- Showing user text in a one-line message --------------------------------------


def _show(value: object) -> str:
    """`value` as it reads, or repr-escaped when it holds control characters."""
    if isinstance(value, bool):  # as YAML and JSON write it
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    text = value if isinstance(value, str) else repr(value)
    return text if text.isprintable() else repr(text)


def _q(value: object) -> str:
    """`value` quoted the way Python would print it, escapes included."""
    return repr(value) if isinstance(value, str) else _show(value)


def _one_line(message: str) -> str:
    # The last guard: anything a library put in the message (a YAML problem
    # text, an OS error) is escaped like a name would be.
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _what(value: object) -> str:
    """The YAML/JSON type of `value`, for "must be a string, not a list"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, date):  # YAML reads 2024-01-01 as a date
        return "a date"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


def _dotted(keys: tuple[Key, ...]) -> str:
    """("spec", "ports", 0, "port") → spec.ports[0].port."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else key
    return out


def _covering(first: int, last: int, floor: int = 32) -> IPv4Network:
    """The smallest network holding the addresses `first`..`last`, at most /`floor`."""
    prefix = min(32 - (first ^ last).bit_length(), floor)
    return IPv4Network((first, prefix), strict=False)


# --- The loader ------------------------------------------------------------------


@dataclass(slots=True)
class _At:
    """An object being read: where it is, and how a message names it."""

    doc: int
    keys: tuple[Key, ...]
    kind: str
    namespace: object = None
    name: object = None
    file: int = 0

    def ident(self) -> str:
        kind = self.kind or "object"
        if self.name is None:
            return kind
        if self.namespace is None:
            return f"{kind} {_show(self.name)}"
        return f"{kind} {_show(self.namespace)}/{_show(self.name)}"


@dataclass(slots=True)
class _Warning:
    sort: str
    at: _At | None
    field: tuple[Key, ...]
    reason: str


class _Loader:
    """One parse of one or more files: their objects by kind, then the cross-object checks."""

    def __init__(
        self, files: Sequence[tuple[str, str]], name: str, progress: Progress | None = None
    ) -> None:
        self.inputs = [(text.removeprefix("\ufeff"), source) for text, source in files]
        self.name = name
        self.progress = progress
        # The file being read; `places` keeps every file's name and locator,
        # indexed by `_At.file`, for messages about any of them.
        self.file = 0
        self.source = self.inputs[0][1] if self.inputs else name
        self.text = self.inputs[0][0] if self.inputs else ""
        self.locator: _Locator = _YamlLocator(self.text)
        self.places: list[tuple[str, _Locator]] = []
        self.warnings: list[_Warning] = []
        # Validated labels, containers and ports, shared between the pods that
        # have the same ones: thousands of replicas differ only in name and IP.
        self._labels: dict[tuple[tuple[object, object], ...], tuple[tuple[str, str], ...]] = {}
        self._container_keys: dict[tuple[object, ...], tuple[Container, ...]] = {}
        self._ips: dict[str, IPv4Address] = {}
        self._owners: dict[tuple[str, str], OwnerRef] = {}
        self._last_containers: tuple[object, tuple[Container, ...]] = (object(), ())
        self._namespaces: set[str] = {"default"}

    # -- messages

    def fail(self, at: _At | None, field: tuple[Key, ...], reason: str) -> NoReturn:
        raise ClusterFileError(_one_line(self.where(at, field, reason)))

    def warn(self, sort: str, at: _At | None, field: tuple[Key, ...], reason: str) -> None:
        self.warnings.append(_Warning(sort, at, field, reason))

    def place(self, at: _At) -> tuple[str, _Locator]:
        if at.file < len(self.places):
            return self.places[at.file]
        return self.source, self.locator

    def where(self, at: _At | None, field: tuple[Key, ...], reason: str) -> str:
        if at is None:
            return f"{self.name}: {reason}"
        source, locator = self.place(at)
        line = locator.line(at.doc, at.keys + field)
        if not at.kind and at.name is None:
            if field:
                return f"{source}:{line}: {_dotted(field)}: {reason}"
            return f"{source}:{line}: {reason}"
        if not field:
            return f"{source}:{line}: {at.ident()}: {reason}"
        return f"{source}:{line}: {at.ident()}: {_dotted(field)}: {reason}"

    def line_of(self, at: _At) -> int:
        return self.place(at)[1].line(at.doc, (*at.keys, "metadata", "name"))

    def line_ref(self, first: _At, at: _At, *, name: bool = True) -> str:
        """`line 12`, or `other.yaml:12` when `first` is in another file than `at`."""
        source, locator = self.place(first)
        keys = (*first.keys, "metadata", "name") if name else first.keys
        line = locator.line(first.doc, keys)
        return f"line {line}" if first.file == at.file else f"{source}:{line}"

    def rendered_warnings(self) -> tuple[str, ...]:
        shown: list[str] = []
        counts: dict[str, int] = {}
        for warning in self.warnings:
            counts[warning.sort] = counts.get(warning.sort, 0) + 1
            if counts[warning.sort] <= _WARNINGS_PER_SORT:
                shown.append(_one_line(self.where(warning.at, warning.field, warning.reason)))
        for sort, count in counts.items():
            if count > _WARNINGS_PER_SORT:
                shown.append(f"{self.name}: … and {count - _WARNINGS_PER_SORT} more {sort}")
        return tuple(shown)

    def tick(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    # -- reading the text

    def documents(self) -> list[Any]:
        text = self.text
        stripped = text.lstrip()
        if not stripped and len(self.inputs) > 1:
            return []
        if not stripped:
            raise ClusterFileError(
                f"{self.source}: file is empty (expected Kubernetes objects in YAML or JSON)"
            )
        json_error: json.JSONDecodeError | None = None
        if stripped[0] in "{[":
            # The fast path: JSON (what generators and `kubectl -o json` write).
            try:
                docs = [json.loads(text)]
            except json.JSONDecodeError as err:
                json_error = err
            except RecursionError:
                raise ClusterFileError(f"{self.source}: nested too deeply to read") from None
            except ValueError:  # an integer of more digits than Python converts
                raise self._too_long(text) from None
            else:
                self.locator = _JsonLocator(text)
                return docs
        try:
            return list(yaml.load_all(text, Loader=_YamlLoader))
        except yaml.MarkedYAMLError as err:
            if json_error is not None:
                raise ClusterFileError(
                    _one_line(
                        f"{self.source}:{json_error.lineno}: not valid JSON:"
                        f" {json_error.msg} (column {json_error.colno})"
                    )
                ) from None
            mark = err.problem_mark or err.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = err.problem or err.context or "unreadable"
            raise ClusterFileError(
                _one_line(f"{self.source}{line}: not valid YAML: {problem}")
            ) from None
        except yaml.YAMLError as err:
            raise ClusterFileError(_one_line(f"{self.source}: not valid YAML: {err}")) from None
        except RecursionError:
            raise ClusterFileError(f"{self.source}: nested too deeply to read") from None
        except ValueError:
            raise self._too_long(text) from None

    def _too_long(self, text: str) -> ClusterFileError:
        # Python refuses to turn a string of over 4300 digits into an int
        # (sys.get_int_max_str_digits); no Kubernetes field holds one.
        found = re.search(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)
        line = f":{text.count(chr(10), 0, found.start()) + 1}" if found else ""
        return ClusterFileError(
            f"{self.source}{line}: a number of {len(found[0]) if found else 'over 4300'} digits"
            " (no Kubernetes field holds one that long)"
        )

    def objects(self) -> Iterator[tuple[_At, dict[str, Any]]]:
        """Every object of every file, `kind: List`s opened, in file order."""
        total = sum(len(text) for text, _ in self.inputs)
        done = 0
        for index, (text, source) in enumerate(self.inputs):
            self.file, self.text, self.source = index, text, source
            self.locator = _YamlLocator(text)
            self.tick(f"reading {source}", done, total)
            docs = self.documents()
            self.places.append((source, self.locator))
            done += len(text)
            self.tick(f"reading {source}", done, total)
            found = False
            for number, doc in enumerate(docs):
                if doc is None:
                    continue
                found = True
                yield from self._flatten(doc, number, (), None)
            if not found and len(self.inputs) == 1:
                raise ClusterFileError(
                    f"{source}: file is empty (expected Kubernetes objects in YAML or JSON)"
                )

    def _flatten(
        self, obj: object, doc: int, keys: tuple[Key, ...], implied: str | None
    ) -> Iterator[tuple[_At, dict[str, Any]]]:
        where = _At(doc, keys, "", file=self.file)
        if not isinstance(obj, dict):
            what = "item" if keys else "document"
            self.fail(
                where,
                (),
                f"{what} is {_what(obj)}, not a Kubernetes object (a mapping with apiVersion"
                " and kind)",
            )
        kind = obj.get("kind", implied)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            where.name = meta.get("name")
        if kind is None:
            self.fail(where, ("kind",), "required (every object names its kind: Pod, Service, …)")
        if not isinstance(kind, str):
            self.fail(where, ("kind",), f"must be a string, not {_what(kind)}")
        where.kind = kind
        if kind.endswith("List") and ("items" in obj or kind == "List"):
            items = obj.get("items")
            if items is None:
                return
            if not isinstance(items, list):
                self.fail(where, ("items",), f"must be a list, not {_what(items)}")
            # A typed list from the API (PodList) leaves out its items' kind.
            item_kind = kind.removesuffix("List") or None
            for index, item in enumerate(items):
                # The common case inline: an object that is not itself a list.
                if type(item) is dict:
                    item_kind_here = item.get("kind", item_kind)
                    if type(item_kind_here) is str and not item_kind_here.endswith("List"):
                        meta = item.get("metadata")
                        name = meta.get("name") if type(meta) is dict else None
                        at = _At(
                            doc, (*keys, "items", index), item_kind_here, None, name, self.file
                        )
                        yield at, item
                        continue
                yield from self._flatten(item, doc, (*keys, "items", index), item_kind)
            return
        yield where, obj

    # -- the whole file

    def cluster(self) -> Cluster:
        by_kind: dict[str, list[tuple[_At, dict[str, Any]]]] = {}
        for at, obj in self.objects():
            version = obj.get("apiVersion")
            expected = _API_VERSIONS.get(at.kind)
            if expected is None:
                if at.kind == "ConfigMap":
                    self.kube_proxy_config_map(at, obj, by_kind)
                continue  # Deployments, Endpoints…: nothing kube-proxy reads.
            if version is not None and version != expected:
                if at.kind == "EndpointSlice" and version == "discovery.k8s.io/v1beta1":
                    reason = "discovery.k8s.io/v1beta1 was removed in Kubernetes 1.25; use v1"
                else:
                    reason = f"{_q(version)} is not {at.kind}'s API version (expected {expected})"
                self.fail(at, ("apiVersion",), reason)
            by_kind.setdefault(at.kind, []).append((at, obj))

        total = sum(len(by_kind.get(kind, ())) for kind in _API_VERSIONS)
        counted = _Counter(self, total)
        proxies = by_kind.get("KubeProxyConfiguration", [])
        if not proxies:
            proxies = by_kind.get("ConfigMap kube-proxy", [])
        proxy = self.kube_proxy(proxies)
        cni = self.cni(by_kind.get("CNIConfig", []))
        nodes = [self.node(at, obj) for at, obj in counted(by_kind.get("Node", []))]
        self.unique("Node", [(at, n.name, None) for at, n in nodes])
        nodes_by_name = {n.name: n for _, n in nodes}
        clients = [self.client(at, obj) for at, obj in by_kind.get("ExternalClient", [])]
        self.unique("ExternalClient", [(at, c.name, None) for at, c in clients])
        pods = [
            parsed
            for at, obj in counted(by_kind.get("Pod", []))
            if (parsed := self.pod(at, obj, nodes_by_name)) is not None
        ]
        self.unique("Pod", [(at, p.name, p.namespace) for at, p in pods])
        services = [self.service(at, obj) for at, obj in counted(by_kind.get("Service", []))]
        self.unique("Service", [(at, s.name, s.namespace) for at, s in services])
        slices = [
            slice_
            for at, obj in counted(by_kind.get("EndpointSlice", []))
            if (slice_ := self.endpoint_slice(at, obj)) is not None
        ]
        self.unique("EndpointSlice", [(at, s.name, s.namespace) for at, s in slices])
        counted.finish()

        owners = self.check_addresses(nodes, pods, clients)
        self.check_pod_cidrs(nodes)
        self.check_pods_in_cidrs(pods, nodes_by_name)
        self.check_services(services)
        self.check_service_ips(services, owners)
        self.check_selectors(services, pods)
        self.check_slices(slices, services, nodes_by_name, {(p.namespace, p.name) for _, p in pods})
        proxy = self.infer_cluster_cidr(proxy, nodes, pods)
        if cni.inferred and len(nodes) > 1:
            self.warn(
                "configuration warnings",
                None,
                (),
                "no CNIConfig: assuming host-gw-like routing between nodes (each node routes"
                " another node's podCIDR via its InternalIP); an overlay (VXLAN) or BGP data"
                " path is not simulated",
            )

        node_network = None
        addresses = [int(n.internal_ip) for _, n in nodes] + [int(c.ip) for _, c in clients]
        if addresses:
            node_network = _covering(min(addresses), max(addresses), floor=24)
        return Cluster(
            nodes=tuple(n for _, n in nodes),
            pods=tuple(p for _, p in pods),
            services=tuple(s for _, s in services),
            endpoint_slices=tuple(s for _, s in slices),
            kube_proxy=proxy,
            cni=cni,
            clients=tuple(c for _, c in clients),
            node_network=node_network,
            warnings=self.rendered_warnings(),
        )

    def kube_proxy_config_map(
        self, at: _At, obj: dict[str, Any], by_kind: dict[str, list[tuple[_At, dict[str, Any]]]]
    ) -> None:
        """kubeadm's and kind's `kube-system/kube-proxy` ConfigMap holds kube-proxy's config."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or (meta.get("namespace"), meta.get("name")) != (
            "kube-system",
            "kube-proxy",
        ):
            return
        data = obj.get("data")
        text = data.get("config.conf") if isinstance(data, dict) else None
        if not isinstance(text, str):
            return
        at.namespace = "kube-system"
        try:
            config = yaml.load(text, Loader=_YamlLoader)
        except yaml.YAMLError as err:
            self.fail(at, ("data", "config.conf"), _one_line(f"not valid YAML: {err}"))
        if not isinstance(config, dict) or config.get("kind") != "KubeProxyConfiguration":
            return
        inner = _At(at.doc, (*at.keys, "data", "config.conf"), at.kind, at.namespace, at.name)
        inner.file = at.file
        by_kind.setdefault("ConfigMap kube-proxy", []).append((inner, config))

    def unique(
        self, kind: str, named: list[tuple[_At, str, str | None]]
    ) -> dict[tuple[str | None, str], _At]:
        seen: dict[tuple[str | None, str], _At] = {}
        for at, name, namespace in named:
            first = seen.setdefault((namespace, name), at)
            if first is not at:
                self.fail(
                    at,
                    ("metadata", "name"),
                    f"duplicate name (first defined at {self.line_ref(first, at)})",
                )
        return seen

    # -- field readers: each checks a type and says what it found otherwise

    def mapping(self, at: _At, value: object, field: tuple[Key, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(at, field, f"must be a mapping, not {_what(value)}")
        return value

    def sequence(self, at: _At, value: object, field: tuple[Key, ...]) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(at, field, f"must be a list, not {_what(value)}")
        return value

    def string(self, at: _At, value: object, field: tuple[Key, ...]) -> str:
        if not isinstance(value, str):
            if value is None:
                self.fail(at, field, "required")
            quote = "; quote it" if isinstance(value, bool | int | float | date) else ""
            self.fail(at, field, f"must be a string, not {_what(value)} ({_show(value)}){quote}")
        return value

    def boolean(self, at: _At, value: object, field: tuple[Key, ...], default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(at, field, f"must be true or false, not {_what(value)} ({_show(value)})")
        return value

    def integer(
        self, at: _At, value: object, field: tuple[Key, ...], low: int, high: int, what: str
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if value is None:
                self.fail(at, field, "required")
            if isinstance(value, float) and value == value and abs(value) != float("inf"):
                self.fail(at, field, f"must be a whole number, not {value:g}")
            self.fail(at, field, f"must be a number, not {_what(value)} ({_q(value)})")
        if not low <= value <= high:
            self.fail(at, field, f"{value} is not {what} ({low}-{high})")
        return value

    def port(self, at: _At, value: object, field: tuple[Key, ...]) -> int:
        return self.integer(at, value, field, 1, 65535, "a port number")

    def protocol(self, at: _At, value: object, field: tuple[Key, ...]) -> Proto:
        if value is None:
            return Proto.TCP
        proto = _PROTOCOLS.get(value) if isinstance(value, str) else None
        if proto is None:
            self.fail(at, field, f"{_q(value)} is not a protocol (TCP, UDP or SCTP)")
        return proto

    def ipv4(self, at: _At, value: object, field: tuple[Key, ...]) -> IPv4Address:
        """The IPv4 address in `value`."""
        if isinstance(value, str):
            cached = self._ips.get(value)
            if cached is not None:
                return cached
        address = self.ipv4_dual(at, value, field, dual=False)
        assert address is not None  # not dual: an IPv6 address fails instead
        return address

    def ipv4_dual(
        self, at: _At, value: object, field: tuple[Key, ...], dual: bool = True
    ) -> IPv4Address | None:
        """The IPv4 address in `value`; None for an IPv6 one of a dual-stack list."""
        if isinstance(value, str):
            cached = self._ips.get(value)
            if cached is not None:
                return cached
            try:
                # inet_pton is as strict as IPv4Address() (no leading zeros,
                # no short forms) and ten times faster on 150,000 pod IPs.
                address = IPv4Address(int.from_bytes(socket.inet_pton(socket.AF_INET, value)))
            except (OSError, ValueError):
                pass
            else:
                self._ips[value] = address
                return address
            if dual and ":" in value:
                try:
                    IPv6Address(value)
                except ValueError:
                    pass
                else:
                    self.warn(
                        "IPv6 addresses skipped",
                        at,
                        field,
                        f"skipped IPv6 address {value} (kubehop simulates IPv4 only)",
                    )
                    return None
        if value is None:
            self.fail(at, field, "required")
        if isinstance(value, str) and ":" in value:
            self.fail(at, field, f"{_q(value)} is IPv6; kubehop simulates IPv4 only")
        self.fail(at, field, f"{_q(value)} is not an IPv4 address")

    def network(
        self, at: _At, value: object, field: tuple[Key, ...], dual: bool = False
    ) -> IPv4Network | None:
        """The IPv4 CIDR in `value`; None for an IPv6 one when `dual` allows it."""
        if isinstance(value, str):
            try:
                # Kubernetes parses CIDRs sloppily: host bits may be set.
                return IPv4Network(value.strip(), strict=False)
            except (AddressValueError, NetmaskValueError, ValueError):
                if dual and ":" in value:
                    self.warn(
                        "IPv6 addresses skipped",
                        at,
                        field,
                        f"skipped IPv6 CIDR {value} (kubehop simulates IPv4 only)",
                    )
                    return None
        self.fail(at, field, f"{_q(value)} is not an IPv4 CIDR (like 10.244.0.0/16)")

    def labels(self, at: _At, value: object, field: tuple[Key, ...]) -> tuple[tuple[str, str], ...]:
        if not value:
            return ()
        if not isinstance(value, dict):
            self.fail(at, field, f"must be a mapping, not {_what(value)}")
        raw = tuple(value.items())
        cached = self._labels.get(raw)
        if cached is not None:
            return cached
        for key, val in raw:
            self.label_key(at, key, field)
            if not isinstance(val, str):
                self.fail(
                    at,
                    (*field, str(key)),
                    f"must be a string, not {_what(val)} ({_show(val)}); quote it",
                )
            if len(val) > 63 or not _LABEL_VALUE.fullmatch(val):
                self.fail(
                    at,
                    (*field, key),
                    f"{_q(val)} is not a label value: at most 63 letters, digits, '-', '_'"
                    " and '.', starting and ending with a letter or digit",
                )
        pairs = tuple(sorted(raw))
        self._labels[raw] = pairs
        return pairs

    def label_key(self, at: _At, key: object, field: tuple[Key, ...]) -> None:
        if not isinstance(key, str):
            self.fail(at, field, f"key {_show(key)} must be a string; quote it")
        prefix, slash, name = key.rpartition("/")
        if (
            len(name) > 63
            or not _LABEL_NAME.fullmatch(name)
            or (slash and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)))
        ):
            self.fail(
                at,
                (*field, key),
                f"{_q(key)} is not a label key: an optional DNS subdomain and '/', then at"
                " most 63 letters, digits, '-', '_' and '.', starting and ending with a"
                " letter or digit",
            )

    def metadata(
        self, at: _At, obj: dict[str, Any], *, namespaced: bool, dns1035: bool = False
    ) -> tuple[dict[str, Any], str, str]:
        """metadata, its checked name and namespace ("" for a cluster-scoped kind)."""
        meta = self.mapping(at, obj.get("metadata"), ("metadata",))
        name = meta.get("name")
        namespace = ""
        if namespaced:
            # Kubernetes puts an object with no namespace in "default".
            given = meta.get("namespace")
            if given is None or given == "":
                given = "default"
            at.namespace = given if isinstance(given, str) else _show(given)
            if type(given) is not str or given not in self._namespaces:
                namespace = self.string(at, given, ("metadata", "namespace"))
                if len(namespace) > 63 or not _DNS1123_LABEL.fullmatch(namespace):
                    self.fail(at, ("metadata", "namespace"), _LABEL_RULE)
                self._namespaces.add(namespace)
            else:
                namespace = given
        name = self.string(at, name, ("metadata", "name"))
        if dns1035:
            if len(name) > 63 or not _DNS1035_LABEL.fullmatch(name):
                self.fail(at, ("metadata", "name"), _DNS1035_RULE)
        elif len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
            self.fail(at, ("metadata", "name"), _SUBDOMAIN_RULE)
        return meta, name, namespace

    # -- kinds

    def kube_proxy(self, found: list[tuple[_At, dict[str, Any]]]) -> KubeProxyConfig:
        if not found:
            return KubeProxyConfig(inferred=True)
        if len(found) > 1:
            at = found[1][0]
            self.fail(
                at,
                (),
                "a second KubeProxyConfiguration (kube-proxy runs with one; the first is at"
                f" {self.line_ref(found[0][0], at, name=False)})",
            )
        at, obj = found[0]
        mode = obj.get("mode") or "iptables"
        if mode in ("ipvs", "nftables"):
            self.fail(
                at,
                ("mode",),
                f"kube-proxy mode {mode!r} is not simulated yet (kubehop simulates iptables mode)",
            )
        if mode != "iptables":
            self.fail(
                at, ("mode",), f"{_q(mode)} is not a kube-proxy mode (iptables, ipvs or nftables)"
            )
        cluster_cidr = None
        raw_cidr = obj.get("clusterCIDR")
        if raw_cidr:
            text = self.string(at, raw_cidr, ("clusterCIDR",))
            # Dual-stack clusters list one CIDR per family, comma-separated.
            for part in text.split(","):
                network = self.network(at, part, ("clusterCIDR",), dual=True)
                if network is not None and cluster_cidr is None:
                    cluster_cidr = network
        else:
            self.warn(
                "configuration warnings",
                at,
                ("clusterCIDR",),
                "not set: kube-proxy cannot tell pod traffic from outside traffic, so it does"
                " not masquerade outside traffic to ClusterIPs",
            )
        iptables = self.mapping(at, obj.get("iptables"), ("iptables",))
        masquerade_all = obj.get("masqueradeAll")
        masquerade_field: tuple[Key, ...] = ("masqueradeAll",)
        if masquerade_all is None:
            masquerade_all = iptables.get("masqueradeAll")
            masquerade_field = ("iptables", "masqueradeAll")
        bit = iptables.get("masqueradeBit")
        addresses: list[IPv4Network] = []
        for index, raw in enumerate(
            self.sequence(at, obj.get("nodePortAddresses"), ("nodePortAddresses",))
        ):
            field = ("nodePortAddresses", index)
            if raw == "primary":
                self.fail(
                    at,
                    field,
                    "'primary' is not simulated yet; list the nodes' network as a CIDR",
                )
            network = self.network(at, raw, field, dual=True)
            if network is not None:
                addresses.append(network)
        return KubeProxyConfig(
            mode=ProxyMode.IPTABLES,
            cluster_cidr=cluster_cidr,
            masquerade_all=self.boolean(at, masquerade_all, masquerade_field, False),
            masquerade_bit=14
            if bit is None
            else self.integer(at, bit, ("iptables", "masqueradeBit"), 0, 31, "a bit number"),
            node_port_addresses=tuple(addresses),
        )

    def cni(self, found: list[tuple[_At, dict[str, Any]]]) -> CNIConfig:
        if not found:
            return CNIConfig(inferred=True)
        if len(found) > 1:
            self.fail(found[1][0], (), "a second CNIConfig (a cluster has one CNI)")
        at, obj = found[0]
        self.metadata(at, obj, namespaced=False)
        # The fields live under spec; a flat object (like KubeProxyConfiguration) works too.
        base: tuple[Key, ...] = ("spec",) if "spec" in obj else ()
        spec = self.mapping(at, obj.get("spec"), base) if base else obj
        plugin = spec.get("plugin", "host-gw")
        if plugin != CNIPlugin.HOST_GW.value:
            self.fail(
                at,
                (*base, "plugin"),
                f"CNI plugin {_q(plugin)} is not simulated yet (kubehop simulates host-gw)",
            )
        bridge = self.string(at, spec.get("bridge", "cni0"), (*base, "bridge"))
        if not _IFNAME.fullmatch(bridge):
            self.fail(
                at,
                (*base, "bridge"),
                f"{_q(bridge)} is not an interface name (1-15 characters, no '/', ':' or spaces)",
            )
        mtu = spec.get("mtu", 1500)
        return CNIConfig(
            plugin=CNIPlugin.HOST_GW,
            bridge=bridge,
            mtu=self.integer(at, mtu, (*base, "mtu"), 576, 9000, "an MTU kubehop accepts"),
            hairpin_mode=self.boolean(at, spec.get("hairpinMode"), (*base, "hairpinMode"), True),
        )

    def client(self, at: _At, obj: dict[str, Any]) -> tuple[_At, ExternalClient]:
        _, name, _ = self.metadata(at, obj, namespaced=False)
        spec = self.mapping(at, obj.get("spec"), ("spec",))
        ip = self.ipv4(at, spec.get("ip"), ("spec", "ip"))
        return at, ExternalClient(name=name, ip=ip)

    def node(self, at: _At, obj: dict[str, Any]) -> tuple[_At, Node]:
        meta, name, _ = self.metadata(at, obj, namespaced=False)
        labels = self.labels(at, meta.get("labels"), ("metadata", "labels"))
        spec = self.mapping(at, obj.get("spec"), ("spec",))
        status = self.mapping(at, obj.get("status"), ("status",))
        internal_ip = None
        for index, address in enumerate(
            self.sequence(at, status.get("addresses"), ("status", "addresses"))
        ):
            address = self.mapping(at, address, ("status", "addresses", index))
            if address.get("type") == "InternalIP" and internal_ip is None:
                internal_ip = self.ipv4_dual(
                    at, address.get("address"), ("status", "addresses", index, "address")
                )
        if internal_ip is None:
            self.fail(
                at,
                ("status", "addresses"),
                "no IPv4 InternalIP address (kubehop puts each node on the network by it)",
            )
        pod_cidr = None
        cidrs = spec.get("podCIDRs")
        if cidrs:
            for index, raw in enumerate(self.sequence(at, cidrs, ("spec", "podCIDRs"))):
                network = self.network(at, raw, ("spec", "podCIDRs", index), dual=True)
                if network is not None and pod_cidr is None:
                    pod_cidr = network
        elif spec.get("podCIDR"):
            pod_cidr = self.network(at, spec["podCIDR"], ("spec", "podCIDR"), dual=True)
        return at, Node(name=name, internal_ip=internal_ip, pod_cidr=pod_cidr, labels=labels)

    def pod(self, at: _At, obj: dict[str, Any], nodes: dict[str, Node]) -> tuple[_At, Pod] | None:
        meta, name, namespace = self.metadata(at, obj, namespaced=True)
        spec = self.mapping(at, obj.get("spec"), ("spec",))
        status = self.mapping(at, obj.get("status"), ("status",))
        node_name = spec.get("nodeName")
        if node_name is None:
            self.warn(
                "pods left out",
                at,
                ("spec", "nodeName"),
                "not scheduled (no nodeName), so it has no network; left out",
            )
            return None
        node_name = self.string(at, node_name, ("spec", "nodeName"))
        node = nodes.get(node_name)
        if node is None:
            self.fail(at, ("spec", "nodeName"), f"no Node named {_q(node_name)} in the file")
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            self.warn(
                "pods left out",
                at,
                ("status", "phase"),
                f"{phase}: its sandbox and IP are released; left out",
            )
            return None
        host_network = self.boolean(at, spec.get("hostNetwork"), ("spec", "hostNetwork"), False)
        ip = node.internal_ip
        if not host_network:
            found = self.pod_ip(at, status)
            if found is None:
                self.warn(
                    "pods left out",
                    at,
                    ("status", "podIP"),
                    "has no IP yet (the CNI has not set up its sandbox); left out",
                )
                return None
            ip = found
        ready = True
        conditions = status.get("conditions")
        if conditions:
            # Without conditions (a hand-written pod) kubehop takes the pod as
            # ready; kubectl's output always has them.
            ready = False
            for condition in self.sequence(at, conditions, ("status", "conditions")):
                if isinstance(condition, dict) and condition.get("type") == "Ready":
                    ready = condition.get("status") in ("True", True)
                    break
        owner = None
        refs = meta.get("ownerReferences")
        if refs:
            for index, ref in enumerate(self.sequence(at, refs, ("metadata", "ownerReferences"))):
                if isinstance(ref, dict) and ref.get("controller") is True:
                    field = ("metadata", "ownerReferences", index)
                    kind = self.string(at, ref.get("kind"), (*field, "kind"))
                    owner_name = self.string(at, ref.get("name"), (*field, "name"))
                    owner = self._owners.get((kind, owner_name))
                    if owner is None:
                        owner = self._owners[kind, owner_name] = OwnerRef(
                            kind=kind, name=owner_name
                        )
                    break
        return at, Pod(
            name=name,
            namespace=namespace,
            labels=self.labels(at, meta.get("labels"), ("metadata", "labels")),
            node=node_name,
            ip=ip,
            host_network=host_network,
            containers=self.containers(at, spec.get("containers")),
            ready=ready,
            terminating=meta.get("deletionTimestamp") is not None,
            owner=owner,
        )

    def pod_ip(self, at: _At, status: dict[str, Any]) -> IPv4Address | None:
        raw = status.get("podIP")
        pod_ips = status.get("podIPs")
        # The usual single-stack pod: podIPs is [{ip: podIP}], an IP seen before
        # (pods are checked before the EndpointSlices that repeat their IPs).
        if (
            type(pod_ips) is list
            and len(pod_ips) == 1
            and type(pod_ips[0]) is dict
            and type(raw) is str
            and pod_ips[0].get("ip") == raw
        ):
            return self.ipv4(at, raw, ("status", "podIPs", 0, "ip"))
        if pod_ips:
            ip = None
            for index, entry in enumerate(self.sequence(at, pod_ips, ("status", "podIPs"))):
                field = ("status", "podIPs", index)
                entry = self.mapping(at, entry, field)
                found = self.ipv4_dual(at, entry.get("ip"), (*field, "ip"))
                # The API server keeps podIP equal to podIPs[0].
                if index == 0 and raw is not None and entry.get("ip") != raw:
                    self.fail(
                        at,
                        ("status", "podIP"),
                        f"{_q(raw)} differs from status.podIPs[0].ip {_q(entry.get('ip'))}",
                    )
                if found is not None and ip is None:
                    ip = found
            if ip is None:
                self.fail(at, ("status", "podIPs"), "no IPv4 address; kubehop simulates IPv4 only")
            return ip
        if raw is None:
            return None
        return self.ipv4(at, raw, ("status", "podIP"))

    def containers(self, at: _At, raw: object) -> tuple[Container, ...]:
        # Replicas share a pod template, so identical containers are checked
        # once; replicas come one after another, so first try the last pod's.
        if raw == self._last_containers[0]:
            return self._last_containers[1]
        field: tuple[Key, ...] = ("spec", "containers")
        items = self.sequence(at, raw, field)
        if not items:
            self.fail(at, field, "required: a pod has at least one container")
        key = _containers_key(items)
        cached = self._container_keys.get(key) if key is not None else None
        if cached is not None:
            self._last_containers = (raw, cached)
            return cached
        containers: list[Container] = []
        names: set[str] = set()
        port_names: set[str] = set()
        for index, item in enumerate(items):
            item = self.mapping(at, item, (*field, index))
            name = self.string(at, item.get("name"), (*field, index, "name"))
            if len(name) > 63 or not _DNS1123_LABEL.fullmatch(name):
                self.fail(at, (*field, index, "name"), _LABEL_RULE)
            if name in names:
                self.fail(at, (*field, index, "name"), f"duplicate container name {_q(name)}")
            names.add(name)
            ports: list[ContainerPort] = []
            for number, port in enumerate(
                self.sequence(at, item.get("ports"), (*field, index, "ports"))
            ):
                where = (*field, index, "ports", number)
                port = self.mapping(at, port, where)
                port_name = port.get("name")
                if port_name is not None:
                    port_name = self.string(at, port_name, (*where, "name"))
                    self.port_name(at, port_name, (*where, "name"))
                    if port_name in port_names:
                        self.fail(at, (*where, "name"), f"duplicate port name {_q(port_name)}")
                    port_names.add(port_name)
                ports.append(
                    ContainerPort(
                        name=port_name,
                        container_port=self.port(
                            at, port.get("containerPort"), (*where, "containerPort")
                        ),
                        protocol=self.protocol(at, port.get("protocol"), (*where, "protocol")),
                    )
                )
            containers.append(Container(name=name, ports=tuple(ports)))
        result = tuple(containers)
        if key is not None:
            self._container_keys[key] = result
        self._last_containers = (raw, result)
        return result

    def port_name(self, at: _At, name: str, field: tuple[Key, ...]) -> None:
        if (
            len(name) > 15
            or not _IANA_SVC_NAME.fullmatch(name)
            or "--" in name
            or not any(c.isalpha() for c in name)
        ):
            self.fail(at, field, f"{_q(name)} {_PORT_NAME_RULE}")

    def service(self, at: _At, obj: dict[str, Any]) -> tuple[_At, Service]:
        _, name, namespace = self.metadata(at, obj, namespaced=True, dns1035=True)
        spec = self.mapping(at, obj.get("spec"), ("spec",))
        status = self.mapping(at, obj.get("status"), ("status",))
        raw_type = spec.get("type") or "ClusterIP"
        if raw_type in _SERVICE_TYPES:
            kind = ServiceType(raw_type)
        else:
            self.fail(
                at,
                ("spec", "type"),
                f"{_q(raw_type)} is not a Service type (ClusterIP, NodePort, LoadBalancer or"
                " ExternalName)",
            )
        cluster_ip = self.cluster_ip(at, spec, kind)
        external = kind in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)
        ports: list[ServicePort] = []
        raw_ports = self.sequence(at, spec.get("ports"), ("spec", "ports"))
        if not raw_ports and kind is not ServiceType.EXTERNAL_NAME and cluster_ip is not None:
            self.fail(at, ("spec", "ports"), "required: a Service has at least one port")
        seen_names: set[str] = set()
        seen_ports: set[tuple[int, Proto]] = set()
        for index, raw in enumerate(raw_ports):
            field: tuple[Key, ...] = ("spec", "ports", index)
            raw = self.mapping(at, raw, field)
            raw_name = raw.get("name")
            if raw_name is None:
                if len(raw_ports) > 1:
                    self.fail(at, (*field, "name"), "required when a Service has several ports")
                raw_name = ""
            port_name = self.string(at, raw_name, (*field, "name"))
            if port_name and (len(port_name) > 63 or not _DNS1123_LABEL.fullmatch(port_name)):
                self.fail(at, (*field, "name"), _LABEL_RULE)
            if port_name in seen_names:
                self.fail(at, (*field, "name"), f"duplicate port name {_q(port_name)}")
            seen_names.add(port_name)
            number = self.port(at, raw.get("port"), (*field, "port"))
            proto = self.protocol(at, raw.get("protocol"), (*field, "protocol"))
            if (number, proto) in seen_ports:
                self.fail(at, (*field, "port"), f"duplicate port {number}/{proto.value.upper()}")
            seen_ports.add((number, proto))
            target: int | str = number
            raw_target = raw.get("targetPort")
            if isinstance(raw_target, str):
                if raw_target.isdigit():
                    self.fail(
                        at,
                        (*field, "targetPort"),
                        f"{_q(raw_target)} is quoted: a port number must not be, and a port"
                        " name must contain a letter",
                    )
                self.port_name(at, raw_target, (*field, "targetPort"))
                target = raw_target
            elif raw_target is not None:
                target = self.port(at, raw_target, (*field, "targetPort"))
            node_port = raw.get("nodePort")
            if node_port is not None:
                if not external:
                    self.fail(
                        at,
                        (*field, "nodePort"),
                        f"may not be set on a {kind.value} Service (only NodePort and"
                        " LoadBalancer)",
                    )
                node_port = self.integer(
                    at, node_port, (*field, "nodePort"), 1, 65535, "a port number"
                )
                low, high = NODE_PORT_RANGE
                if not low <= node_port <= high:
                    self.fail(
                        at,
                        (*field, "nodePort"),
                        f"{node_port} is outside the NodePort range {low}-{high}",
                    )
            elif external and not (
                kind is ServiceType.LOAD_BALANCER
                and spec.get("allocateLoadBalancerNodePorts") is False
            ):
                self.fail(
                    at,
                    (*field, "nodePort"),
                    f"required on a {kind.value} Service (kubehop does not allocate NodePorts)",
                )
            ports.append(
                ServicePort(
                    name=port_name,
                    protocol=proto,
                    port=number,
                    target_port=target,
                    node_port=node_port,
                )
            )
        selector = None
        raw_selector = spec.get("selector")
        if raw_selector:
            selector = self.labels(at, raw_selector, ("spec", "selector"))
        timeout = None
        affinity = spec.get("sessionAffinity", "None")
        if affinity == "ClientIP":
            config = self.mapping(at, spec.get("sessionAffinityConfig"), ("spec",))
            client_ip = self.mapping(at, config.get("clientIP"), ("spec", "sessionAffinityConfig"))
            raw_timeout = client_ip.get("timeoutSeconds")
            timeout = (
                10800
                if raw_timeout is None
                else self.integer(
                    at,
                    raw_timeout,
                    ("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"),
                    1,
                    86400,
                    "a timeout Kubernetes accepts",
                )
            )
        elif affinity not in ("None", None):
            self.fail(
                at,
                ("spec", "sessionAffinity"),
                f"{_q(affinity)} is not a session affinity (None or ClientIP)",
            )
        external_policy = TrafficPolicy.CLUSTER
        if external:
            external_policy = self.policy(at, spec, "externalTrafficPolicy")
        health = spec.get("healthCheckNodePort")
        if health is not None:
            health = self.port(at, health, ("spec", "healthCheckNodePort"))
        externals = [
            self.ipv4_dual(at, raw, ("spec", "externalIPs", index))
            for index, raw in enumerate(
                self.sequence(at, spec.get("externalIPs"), ("spec", "externalIPs"))
            )
        ]
        balancers: list[IPv4Address | None] = []
        load_balancer = self.mapping(at, status.get("loadBalancer"), ("status", "loadBalancer"))
        for index, ingress in enumerate(
            self.sequence(at, load_balancer.get("ingress"), ("status", "loadBalancer", "ingress"))
        ):
            ingress = self.mapping(at, ingress, ("status", "loadBalancer", "ingress", index))
            if ingress.get("ip") is not None:  # a hostname-only ingress has no IP to route
                balancers.append(
                    self.ipv4_dual(
                        at, ingress["ip"], ("status", "loadBalancer", "ingress", index, "ip")
                    )
                )
        ranges = [
            self.network(at, raw, ("spec", "loadBalancerSourceRanges", index), dual=True)
            for index, raw in enumerate(
                self.sequence(
                    at, spec.get("loadBalancerSourceRanges"), ("spec", "loadBalancerSourceRanges")
                )
            )
        ]
        return at, Service(
            name=name,
            namespace=namespace,
            type=kind,
            cluster_ip=cluster_ip,
            ports=tuple(ports),
            selector=selector,
            session_affinity_timeout=timeout,
            external_traffic_policy=external_policy,
            internal_traffic_policy=self.policy(at, spec, "internalTrafficPolicy"),
            external_ips=tuple(ip for ip in externals if ip is not None),
            load_balancer_ips=tuple(ip for ip in balancers if ip is not None),
            load_balancer_source_ranges=tuple(r for r in ranges if r is not None),
            health_check_node_port=health,
            publish_not_ready_addresses=self.boolean(
                at,
                spec.get("publishNotReadyAddresses"),
                ("spec", "publishNotReadyAddresses"),
                False,
            ),
            external_name=self.external_name(at, spec) if kind is ServiceType.EXTERNAL_NAME else "",
        )

    def external_name(self, at: _At, spec: dict[str, Any]) -> str:
        """spec.externalName: a DNS name (Kubernetes takes it lowercase, trailing dot allowed)."""
        name = self.string(at, spec.get("externalName"), ("spec", "externalName"))
        bare = name.removesuffix(".")
        if len(bare) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(bare):
            self.fail(
                at,
                ("spec", "externalName"),
                f"{_q(name)} is not a DNS name (lowercase letters, digits, '-' and '.')",
            )
        return name

    def policy(self, at: _At, spec: dict[str, Any], key: str) -> TrafficPolicy:
        raw = spec.get(key) or "Cluster"
        if raw in ("Cluster", "Local"):
            return TrafficPolicy(raw)
        self.fail(at, ("spec", key), f"{_q(raw)} is not a traffic policy (Cluster or Local)")

    def cluster_ip(self, at: _At, spec: dict[str, Any], kind: ServiceType) -> IPv4Address | None:
        if kind is ServiceType.EXTERNAL_NAME:
            return None
        raw = spec.get("clusterIP")
        ips = spec.get("clusterIPs")
        if raw == "None" or (raw is None and ips == ["None"]):
            if kind is not ServiceType.CLUSTER_IP:
                self.fail(
                    at, ("spec", "clusterIP"), f"a {kind.value} Service cannot be headless (None)"
                )
            return None
        if ips:
            listed = self.sequence(at, ips, ("spec", "clusterIPs"))
            if raw not in (None, "") and listed and listed[0] != raw:
                self.fail(
                    at,
                    ("spec", "clusterIPs", 0),
                    f"{_q(listed[0])} must be spec.clusterIP's address {_q(raw)}"
                    " (Kubernetes requires clusterIPs[0] == clusterIP)",
                )
            found = None
            for index, ip in enumerate(listed):
                address = self.ipv4_dual(at, ip, ("spec", "clusterIPs", index))
                if address is not None and found is None:
                    found = address
            if found is None:
                self.fail(
                    at, ("spec", "clusterIPs"), "no IPv4 address; kubehop simulates IPv4 only"
                )
            return found
        if raw is None or raw == "":
            self.fail(
                at,
                ("spec", "clusterIP"),
                "required (kubectl's output always has one; kubehop does not allocate ClusterIPs)",
            )
        return self.ipv4(at, raw, ("spec", "clusterIP"))

    def endpoint_slice(self, at: _At, obj: dict[str, Any]) -> tuple[_At, EndpointSlice] | None:
        meta, name, namespace = self.metadata(at, obj, namespaced=True)
        address_type = obj.get("addressType")
        if address_type != "IPv4":
            if address_type in ("IPv6", "FQDN"):
                self.warn(
                    "EndpointSlices skipped",
                    at,
                    ("addressType",),
                    f"{address_type} slice skipped (kube-proxy's IPv4 rules never use it)",
                )
                return None
            self.fail(at, ("addressType",), f"{_q(address_type)} is not IPv4, IPv6 or FQDN")
        labels = self.mapping(at, meta.get("labels"), ("metadata", "labels"))
        service = labels.get("kubernetes.io/service-name")
        if service is None:
            self.warn(
                "EndpointSlices skipped",
                at,
                ("metadata", "labels"),
                "no kubernetes.io/service-name label, so kube-proxy ignores it; skipped",
            )
            return None
        service = self.string(at, service, ("metadata", "labels", "kubernetes.io/service-name"))
        ports: list[EndpointPort] = []
        for index, raw in enumerate(self.sequence(at, obj.get("ports"), ("ports",))):
            raw = self.mapping(at, raw, ("ports", index))
            port_name = self.string(at, raw.get("name") or "", ("ports", index, "name"))
            if port_name and (len(port_name) > 63 or not _DNS1123_LABEL.fullmatch(port_name)):
                self.fail(at, ("ports", index, "name"), _LABEL_RULE)
            ports.append(
                EndpointPort(
                    name=port_name,
                    port=self.port(at, raw.get("port"), ("ports", index, "port")),
                    protocol=self.protocol(at, raw.get("protocol"), ("ports", index, "protocol")),
                )
            )
        endpoints: list[Endpoint] = []
        raw_endpoints = self.sequence(at, obj.get("endpoints"), ("endpoints",))
        if len(raw_endpoints) > 1000:
            self.fail(
                at, ("endpoints",), f"{len(raw_endpoints)} endpoints; a slice holds at most 1000"
            )
        for index, raw in enumerate(raw_endpoints):
            endpoints.append(self.endpoint(at, raw, index))
        return at, EndpointSlice(
            name=name,
            namespace=namespace,
            service=service,
            ports=tuple(ports),
            endpoints=tuple(endpoints),
            derived=False,
        )

    def endpoint(self, at: _At, raw: object, index: int) -> Endpoint:
        if not isinstance(raw, dict):
            self.fail(at, ("endpoints", index), f"must be a mapping, not {_what(raw)}")
        addresses = raw.get("addresses")
        if not isinstance(addresses, list) or not addresses:
            self.fail(at, ("endpoints", index, "addresses"), "required: at least one address")
        ip = self.ipv4(at, addresses[0], ("endpoints", index, "addresses", 0))
        conditions = raw.get("conditions") or {}
        if not isinstance(conditions, dict):
            self.fail(
                at,
                ("endpoints", index, "conditions"),
                f"must be a mapping, not {_what(conditions)}",
            )
        # The API says an unknown (null) condition counts as ready, serving
        # follows ready, and terminating is false.
        ready = conditions.get("ready")
        ready = True if ready is None else ready
        serving = conditions.get("serving")
        serving = ready if serving is None else serving
        terminating = conditions.get("terminating")
        terminating = False if terminating is None else terminating
        if not (type(ready) is bool and type(serving) is bool and type(terminating) is bool):
            for key in ("ready", "serving", "terminating"):
                self.boolean(
                    at, conditions.get(key), ("endpoints", index, "conditions", key), False
                )
        node = raw.get("nodeName")
        if node is not None:
            node = self.string(at, node, ("endpoints", index, "nodeName"))
        pod = None
        ref = raw.get("targetRef")
        if isinstance(ref, dict) and ref.get("kind") == "Pod":
            pod = self.string(at, ref.get("name"), ("endpoints", index, "targetRef", "name"))
        return Endpoint(
            ip=ip, ready=ready, serving=serving, terminating=terminating, node=node, pod=pod
        )

    # -- checks across objects

    def check_addresses(
        self,
        nodes: list[tuple[_At, Node]],
        pods: list[tuple[_At, Pod]],
        clients: list[tuple[_At, ExternalClient]],
    ) -> dict[IPv4Address, _At]:
        """Every node, client and pod IP has one owner; returns who owns which."""
        owners: dict[IPv4Address, _At] = {}
        claims = [(n.internal_ip, at, ("status", "addresses")) for at, n in nodes]
        claims += [(c.ip, at, ("spec", "ip")) for at, c in clients]
        # A hostNetwork pod shares its node's IP (and netns) by design.
        claims += [(p.ip, at, ("status", "podIP")) for at, p in pods if not p.host_network]
        for ip, at, field in claims:
            first = owners.setdefault(ip, at)
            if first is not at:
                line = self.line_ref(first, at)
                self.fail(at, field, f"{ip} is already the IP of {first.ident()} ({line})")
        return owners

    def check_service_ips(
        self, services: list[tuple[_At, Service]], owners: dict[IPv4Address, _At]
    ) -> None:
        """A ClusterIP that is also a node's or a pod's IP would send that host's traffic
        through kube-proxy's DNAT: Kubernetes allocates ClusterIPs from a range of their own."""
        for at, service in services:
            if service.cluster_ip is not None and service.cluster_ip in owners:
                first = owners[service.cluster_ip]
                self.fail(
                    at,
                    ("spec", "clusterIP"),
                    f"{service.cluster_ip} is already the IP of {first.ident()}"
                    f" ({self.line_ref(first, at)})",
                )

    def check_pod_cidrs(self, nodes: list[tuple[_At, Node]]) -> None:
        # Sorted by start, two podCIDRs overlap only if neighbours do.
        ranged = sorted(
            ((n.pod_cidr, at) for at, n in nodes if n.pod_cidr is not None),
            key=lambda pair: (pair[0].network_address, pair[0].prefixlen),
        )
        for (before, first), (after, at) in pairwise(ranged):
            if before.overlaps(after):
                self.fail(
                    at,
                    ("spec", "podCIDR"),
                    f"{after} overlaps {first.ident()}'s podCIDR {before}"
                    f" ({self.line_ref(first, at)})",
                )
        # Disjoint now: the one podCIDR that could hold an address starts at or before it.
        starts = [int(cidr.network_address) for cidr, _ in ranged]
        for at, node in nodes:
            i = bisect_right(starts, int(node.internal_ip)) - 1
            if i >= 0 and node.internal_ip in ranged[i][0]:
                cidr, owner = ranged[i]
                self.fail(
                    at,
                    ("status", "addresses"),
                    f"InternalIP {node.internal_ip} lies in {owner.ident()}'s podCIDR {cidr}"
                    " (node and pod addresses come from separate ranges)",
                )

    def check_pods_in_cidrs(self, pods: list[tuple[_At, Pod]], nodes: dict[str, Node]) -> None:
        bare: set[str] = set()
        # (network, mask) as ints: IPv4Network.__contains__ is too slow for 150,000 pods.
        ranges = {
            name: (int(n.pod_cidr.network_address), int(n.pod_cidr.netmask))
            for name, n in nodes.items()
            if n.pod_cidr is not None
        }
        for at, pod in pods:
            if pod.host_network:
                continue
            network_mask = ranges.get(pod.node)
            if network_mask is not None and int(pod.ip) & network_mask[1] == network_mask[0]:
                if int(pod.ip) == network_mask[0] + 1:
                    self.warn(
                        "pods on their bridge's address",
                        at,
                        ("status", "podIP"),
                        f"{pod.ip} is the first address of node {pod.node}'s podCIDR, which"
                        " the bridge CNI gives the node's bridge (host-local IPAM never hands"
                        " it to a pod): the pod and the bridge clash",
                    )
                continue
            cidr = nodes[pod.node].pod_cidr
            if cidr is None:
                if pod.node not in bare:
                    bare.add(pod.node)
                    self.warn(
                        "pods on nodes with no podCIDR",
                        at,
                        ("spec", "nodeName"),
                        f"node {pod.node} has no podCIDR, so no route sends other nodes'"
                        f" traffic for {pod.ip} to it",
                    )
            else:
                self.warn(
                    "pods with IPs outside their node's podCIDR",
                    at,
                    ("status", "podIP"),
                    f"{pod.ip} is outside node {pod.node}'s podCIDR {cidr} (IPAM like"
                    " Calico's does this; a host-gw route by podCIDR will not reach it)",
                )

    def check_services(self, services: list[tuple[_At, Service]]) -> None:
        cluster_ips: dict[IPv4Address, _At] = {}
        node_ports: dict[tuple[int, Proto], _At] = {}
        for at, service in services:
            if service.cluster_ip is not None:
                first = cluster_ips.setdefault(service.cluster_ip, at)
                if first is not at:
                    self.fail(
                        at,
                        ("spec", "clusterIP"),
                        f"{service.cluster_ip} is already the ClusterIP of {first.ident()}"
                        f" ({self.line_ref(first, at)})",
                    )
            for index, port in enumerate(service.ports):
                if port.node_port is None:
                    continue
                first = node_ports.setdefault((port.node_port, port.protocol), at)
                if first is not at:
                    self.fail(
                        at,
                        ("spec", "ports", index, "nodePort"),
                        f"{port.node_port} is already a nodePort of {first.ident()}"
                        f" ({self.line_ref(first, at)})",
                    )

    def check_selectors(
        self, services: list[tuple[_At, Service]], pods: list[tuple[_At, Pod]]
    ) -> None:
        by_label: dict[tuple[str, str, str], list[Pod]] = {}
        for _, pod in pods:
            for key, value in pod.labels:
                by_label.setdefault((pod.namespace, key, value), []).append(pod)
        for at, service in services:
            if not service.selector:
                continue
            candidates = min(
                (by_label.get((service.namespace, k, v), []) for k, v in service.selector),
                key=len,
            )
            wanted = set(service.selector)
            if not any(wanted.issubset(pod.labels) for pod in candidates):
                shown = ",".join(f"{k}={v}" for k, v in service.selector)
                self.warn(
                    "Services whose selector matches no pod",
                    at,
                    ("spec", "selector"),
                    f"{shown} matches no pod, so the Service has no endpoints and kube-proxy"
                    " rejects its traffic",
                )

    def check_slices(
        self,
        slices: list[tuple[_At, EndpointSlice]],
        services: list[tuple[_At, Service]],
        nodes: dict[str, Node],
        pods: set[tuple[str, str]],
    ) -> None:
        known = {(s.namespace, s.name) for _, s in services}
        for at, slice_ in slices:
            if (slice_.namespace, slice_.service) not in known:
                self.warn(
                    "EndpointSlices of missing Services",
                    at,
                    ("metadata", "labels", "kubernetes.io/service-name"),
                    f"no Service {slice_.namespace}/{slice_.service} in the file, so kube-proxy"
                    " makes no rules from this slice",
                )
            for index, endpoint in enumerate(slice_.endpoints):
                if endpoint.node is not None and endpoint.node not in nodes:
                    self.warn(
                        "endpoints on missing nodes",
                        at,
                        ("endpoints", index, "nodeName"),
                        f"no Node named {endpoint.node} in the file",
                    )
                if endpoint.pod is not None and (slice_.namespace, endpoint.pod) not in pods:
                    self.warn(
                        "endpoints of missing pods",
                        at,
                        ("endpoints", index, "targetRef", "name"),
                        f"no Pod {slice_.namespace}/{endpoint.pod} in the file (a stale slice or"
                        f" a partial dump); kube-proxy sends traffic to {endpoint.ip} all the same",
                    )

    def infer_cluster_cidr(
        self, proxy: KubeProxyConfig, nodes: list[tuple[_At, Node]], pods: list[tuple[_At, Pod]]
    ) -> KubeProxyConfig:
        if not proxy.inferred:
            return proxy
        cidrs = [n.pod_cidr for _, n in nodes if n.pod_cidr is not None]
        if cidrs:
            first = min(int(c.network_address) for c in cidrs)
            last = max(int(c.broadcast_address) for c in cidrs)
            cluster_cidr: IPv4Network | None = _covering(first, last)
            basis = "the smallest network covering every node's podCIDR"
        else:
            ips = [int(p.ip) for _, p in pods if not p.host_network]
            cluster_cidr = _covering(min(ips), max(ips)) if ips else None
            basis = "the smallest network covering every pod IP (no node has a podCIDR)"
        self.warn(
            "configuration warnings",
            None,
            (),
            f"no KubeProxyConfiguration: assuming mode iptables and clusterCIDR"
            f" {cluster_cidr} ({basis})",
        )
        return KubeProxyConfig(cluster_cidr=cluster_cidr, inferred=True)


class _Counter:
    """Counts objects as they are checked, telling the loader's progress every 1024."""

    def __init__(self, loader: _Loader, total: int) -> None:
        self.loader = loader
        self.total = total
        self.done = 0

    def __call__(
        self, items: list[tuple[_At, dict[str, Any]]]
    ) -> Iterator[tuple[_At, dict[str, Any]]]:
        if self.loader.progress is None:
            yield from items
            return
        for item in items:
            yield item
            self.done += 1
            if not self.done & 1023:
                self.loader.tick("checking objects", self.done, self.total)

    def finish(self) -> None:
        self.loader.tick("checking objects", self.total, self.total)


def _containers_key(items: list[Any]) -> tuple[object, ...] | None:
    """What kubehop reads of `spec.containers`, hashable; None if it is not well formed."""
    key: list[object] = []
    for container in items:
        if not isinstance(container, dict):
            return None
        key.append(container.get("name"))
        ports = container.get("ports")
        if ports is None:
            key.append(None)
            continue
        if not isinstance(ports, list):
            return None
        for port in ports:
            if not isinstance(port, dict):
                return None
            key.append((port.get("name"), port.get("containerPort"), port.get("protocol")))
        key.append(len(ports))
    try:
        hash(tuple(key))
    except TypeError:  # a list or mapping where a name or number belongs
        return None
    return tuple(key)


_SERVICE_TYPES = {t.value for t in ServiceType}

_API_VERSIONS = {
    "Node": "v1",
    "Pod": "v1",
    "Service": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "KubeProxyConfiguration": "kubeproxy.config.k8s.io/v1alpha1",
    "CNIConfig": "kubehop.dev/v1alpha1",
    "ExternalClient": "kubehop.dev/v1alpha1",
}
