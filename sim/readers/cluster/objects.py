"""The Kubernetes objects in parsed documents: `List`s opened, sorted by kind, versions checked.

Kinds that make no network (Deployments, Events, …) are dropped here; v1
Endpoints are kept for Services a dump has no EndpointSlices of;
kube-proxy's configuration is also found inside kubeadm's and kind's
`kube-system/kube-proxy` ConfigMap. A file of objects in Go's field names
(`Items`, `ObjectMeta`, `Spec`), which old kubectl versions printed by
mistake, is named as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

import yaml

from sim.readers.cluster.documents import Key, YamlLoader
from sim.readers.cluster.messages import At, Report
from sim.readers.cluster.quoting import one_line, quoted, yaml_type

__all__ = [
    "API_VERSIONS",
    "CONFIG_MAP_KUBE_PROXY",
    "GO_FIELDS",
    "ByKind",
    "by_kind",
    "flatten",
    "sorted_kind",
]

API_VERSIONS = {
    "Node": "v1",
    "Pod": "v1",
    "Service": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "Endpoints": "v1",
    "KubeProxyConfiguration": "kubeproxy.config.k8s.io/v1alpha1",
    "CNIConfig": "kubehop.dev/v1alpha1",
    "ExternalClient": "kubehop.dev/v1alpha1",
    "ServiceCIDR": "networking.k8s.io/v1beta1",
}
"""The kinds kubehop reads, each with the one API version it accepts."""

CONFIG_MAP_KUBE_PROXY = "ConfigMap kube-proxy"
"""The `by_kind` entry for KubeProxyConfigurations found inside the kube-proxy ConfigMap."""

ByKind = dict[str, list[tuple[At, dict[str, Any]]]]
"""Objects by kind, each with where it is, in file order."""

GO_FIELDS = ("Items", "TypeMeta", "ObjectMeta", "ListMeta", "Kind", "Spec", "Status")
"""Keys of an object printed in Go's field names instead of the API's (`items`, `kind`, …)."""

_GO_FORM = (
    "an old kubectl's dump: objects in Go's field names (Items, ObjectMeta, Spec, PodCIDR…)"
    " instead of the API's (items, metadata, spec, podCIDR), which some kubectl versions"
    " printed by mistake; dump the cluster again with a current kubectl: kubectl get"
    " nodes,pods,services,endpointslices -A -o yaml"
)


def _refuse_go_form(report: Report, at: At, key: str) -> NoReturn:
    """Fail at `key` of the object `at`, saying the file is an old kubectl's Go-form dump."""
    report.fail(At(at.doc, (*at.keys, key), at.kind, at.namespace, at.name, at.file), (), _GO_FORM)


def _go_form(obj: dict[str, Any]) -> str | None:
    """The first Go field name `obj` has where the API's would be, if any."""
    for key in GO_FIELDS:
        if key in obj and key.lower() not in obj and (key != "ObjectMeta" or "metadata" not in obj):
            return key
    return None


def flatten(
    report: Report,
    file: int,
    obj: object,
    doc: int,
    keys: tuple[Key, ...] = (),
    implied: str | None = None,
) -> Iterator[tuple[At, dict[str, Any]]]:
    """The objects in `obj` (document `doc` of file `file`), a `kind: List` opened."""
    where = At(doc, keys, "", file=file)
    if not isinstance(obj, dict):
        what = "item" if keys else "document"
        report.fail(
            where,
            (),
            f"{what} is {yaml_type(obj)}, not a Kubernetes object (a mapping with apiVersion"
            " and kind)",
        )
    kind = obj.get("kind", implied)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        where.name = meta.get("name")
    if kind is None:
        found = _go_form(obj)
        if found is not None:
            _refuse_go_form(report, where, found)
        report.fail(where, ("kind",), "required (every object names its kind: Pod, Service, …)")
    if not isinstance(kind, str):
        report.fail(where, ("kind",), f"must be a string, not {yaml_type(kind)}")
    where.kind = kind
    if kind.endswith("List") and ("items" in obj or kind == "List"):
        items = obj.get("items")
        if items is None:
            if "Items" in obj:
                _refuse_go_form(report, where, "Items")
            return
        if not isinstance(items, list):
            report.fail(where, ("items",), f"must be a list, not {yaml_type(items)}")
        # A typed list from the API (PodList) leaves out its items' kind.
        item_kind = kind.removesuffix("List") or None
        for index, item in enumerate(items):
            # The common case inline: an object that is not itself a list.
            if type(item) is dict:
                item_kind_here = item.get("kind", item_kind)
                if type(item_kind_here) is str and not item_kind_here.endswith("List"):
                    meta = item.get("metadata")
                    name = meta.get("name") if type(meta) is dict else None
                    at = At(doc, (*keys, "items", index), item_kind_here, None, name, file)
                    yield at, item
                    continue
            yield from flatten(report, file, item, doc, (*keys, "items", index), item_kind)
        return
    yield where, obj


def by_kind(report: Report, objects: Iterable[tuple[At, dict[str, Any]]]) -> ByKind:
    """`objects` of the kinds kubehop reads, by kind, each at its kind's API version."""
    found: ByKind = {}
    for at, obj in objects:
        kind = sorted_kind(report, at, obj, found)
        if kind is not None:
            found.setdefault(kind, []).append((at, obj))
    return found


def sorted_kind(report: Report, at: At, obj: dict[str, Any], found: ByKind) -> str | None:
    """The kind `obj` is read as, its API version checked; None for a kind kubehop skips.

    kube-proxy's configuration inside kubeadm's ConfigMap goes into `found` here.
    """
    expected = API_VERSIONS.get(at.kind)
    if expected is None:
        if at.kind == "ConfigMap":
            _kube_proxy_config_map(report, at, obj, found)
        return None  # Deployments, Events…: nothing kube-proxy reads.
    if "metadata" not in obj:
        go_key = _go_form(obj)
        if go_key is not None:
            _refuse_go_form(report, at, go_key)
    version = obj.get("apiVersion")
    if version is not None and version != expected:
        if at.kind == "EndpointSlice" and version == "discovery.k8s.io/v1beta1":
            reason = "discovery.k8s.io/v1beta1 was removed in Kubernetes 1.25; use v1"
        elif at.kind == "ServiceCIDR" and version == "networking.k8s.io/v1":
            return at.kind  # GA in 1.33: the same object
        else:
            reason = f"{quoted(version)} is not {at.kind}'s API version (expected {expected})"
        report.fail(at, ("apiVersion",), reason)
    return at.kind


def _kube_proxy_config_map(report: Report, at: At, obj: dict[str, Any], found: ByKind) -> None:
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
        config = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as err:
        report.fail(at, ("data", "config.conf"), one_line(f"not valid YAML: {err}"))
    if not isinstance(config, dict) or config.get("kind") != "KubeProxyConfiguration":
        return
    inner = At(at.doc, (*at.keys, "data", "config.conf"), at.kind, at.namespace, at.name)
    inner.file = at.file
    found.setdefault(CONFIG_MAP_KUBE_PROXY, []).append((inner, config))
