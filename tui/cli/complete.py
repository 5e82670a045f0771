"""Shell completion: argcomplete completes commands and options from the parser, and names
(pods, Services, nodes, clients, namespaces, containers) from the cluster file on the line.

The shell runs `kubehop` with `_ARGCOMPLETE` set at every Tab, so this must
stay quick: argcomplete is imported only then, a completer reads the cluster
file (the demo without `--cluster`) and nothing more — no rules rendered,
nothing traced — and a file that cannot be read completes nothing rather than
printing an error into the command line.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from model.errors import KubehopError

if TYPE_CHECKING:
    from model.cluster import Cluster, Pod

Completer = Callable[..., Iterable[str]]
"""What argcomplete calls: `(prefix=, parsed_args=, action=, parser=)` → candidates."""


def attach(action: argparse.Action, completer: Completer) -> None:
    """Make the shell complete `action`'s value with `completer` (argcomplete's hook)."""
    action.completer = completer  # type: ignore[attr-defined]


def autocomplete(
    parser: argparse.ArgumentParser, finder: Callable[..., None] | None = None, **how: Any
) -> None:
    """Answer the shell's completion request and exit, when this run is one; else return.

    `finder` and `how` are argcomplete's (a test completes in its own process).
    """
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    # Names, not options, when a value is due: options show once a '-' is typed.
    (finder or argcomplete.autocomplete)(parser, always_complete_options=False, **how)


def shell_script(shell: str) -> str:
    """The script that registers the completion of `kubehop` in `shell`."""
    from argcomplete.shell_integration import shellcode

    return shellcode(["kubehop"], shell=shell)


def _merged(parsed_args: argparse.Namespace) -> argparse.Namespace:
    # argcomplete stops parsing at the word being completed, before the parser
    # merges the global options given at each level.
    from tui.cli.parser import merged

    return merged(argparse.Namespace(**vars(parsed_args)))


def _cluster(parsed_args: argparse.Namespace) -> Cluster | None:
    """The cluster the line names, or None when it cannot be read (nothing is completed)."""
    paths = getattr(_merged(parsed_args), "clusters", None) or []
    return _load(tuple(paths))


@functools.cache
def _load(paths: tuple[str, ...]) -> Cluster | None:
    from sim.cluster.load import load

    try:
        return load(list(paths) or None)
    except KubehopError:
        return None


def _namespace(parsed_args: argparse.Namespace) -> str:
    return getattr(_merged(parsed_args), "namespace", None) or "default"


def _label(namespaced: str, name: str, namespace: str) -> str:
    """`name` in `namespace`, `ns/name` elsewhere, as a source is written."""
    return name if namespaced == namespace else f"{namespaced}/{name}"


def namespaces(parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Every namespace that has a pod or a Service."""
    cluster = _cluster(parsed_args)
    if cluster is None:
        return []
    found = {p.namespace for p in cluster.pods} | {s.namespace for s in cluster.services}
    return sorted(found)


def nodes(parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The nodes' names."""
    cluster = _cluster(parsed_args)
    return [n.name for n in cluster.nodes] if cluster is not None else []


def sources(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Pods (bare in -n's namespace, `ns/pod` elsewhere), clients, nodes; addresses after a digit."""
    cluster = _cluster(parsed_args)
    if cluster is None:
        return []
    namespace = _namespace(parsed_args)
    if "/" in prefix:
        names = [p.key for p in cluster.pods]
    else:
        names = [_label(p.namespace, p.name, namespace) for p in cluster.pods]
    names += [c.name for c in cluster.clients] + [n.name for n in cluster.nodes]
    if prefix[:1].isdigit():
        names += [str(p.ip) for p in cluster.pods]
        names += [str(n.internal_ip) for n in cluster.nodes] + [str(c.ip) for c in cluster.clients]
    return list(dict.fromkeys(names))


def _source_pod(cluster: Cluster, parsed_args: argparse.Namespace) -> Pod | None:
    """The pod the line's source names, if it names one."""
    text = (getattr(parsed_args, "source", None) or "").strip()
    namespace, _, name = text.rpartition("/")
    pod = cluster.pod(namespace or _namespace(parsed_args), name)
    return pod or next((p for p in cluster.pods if str(p.ip) == text), None)


def destinations(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Services as `name[.namespace]:port` (bare in the namespace the source resolves in),
    the source pod's `localhost:PORT`; after a digit, pod, Service and NodePort addresses.
    """
    cluster = _cluster(parsed_args)
    if cluster is None:
        return []
    pod = _source_pod(cluster, parsed_args)
    # A pod's resolver searches its own namespace; a node's or client's names are -n's.
    namespace = pod.namespace if pod is not None else _namespace(parsed_args)
    names: list[str] = []
    addresses: list[str] = []
    for svc in cluster.services:
        short = svc.name if svc.namespace == namespace else f"{svc.name}.{svc.namespace}"
        for port in svc.ports:
            udp = _udp(port.protocol.value)
            names.append(f"{short}:{port.port}{udp}")
            if svc.cluster_ip is not None:
                addresses.append(f"{svc.cluster_ip}:{port.port}{udp}")
            if port.node_port is not None:
                addresses += [f"{n.internal_ip}:{port.node_port}{udp}" for n in cluster.nodes]
    if pod is not None:
        names += [
            f"localhost:{port.container_port}{_udp(port.protocol.value)}"
            for c in pod.containers
            for port in c.ports
        ]
    addresses += _pod_ports(cluster)
    return list(dict.fromkeys(addresses if prefix[:1].isdigit() else names))


def _udp(protocol: str) -> str:
    return "/udp" if protocol == "udp" else ""


def _pod_ports(cluster: Cluster, *, protocol: bool = True) -> list[str]:
    return [
        f"{p.ip}:{port.container_port}{_udp(port.protocol.value) if protocol else ''}"
        for p in cluster.pods
        for c in p.containers
        for port in c.ports
    ]


def containers(parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The containers of the source pod."""
    cluster = _cluster(parsed_args)
    pod = _source_pod(cluster, parsed_args) if cluster is not None else None
    return [c.name for c in pod.containers] if pod is not None else []


def endpoints(parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Pods' `IP:PORT`, what `--pick` pins."""
    cluster = _cluster(parsed_args)
    return list(dict.fromkeys(_pod_ports(cluster, protocol=False))) if cluster is not None else []


def node_files(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """`NODE=` first, then the files after the `=`."""
    node, equals, path = prefix.partition("=")
    if not equals:
        return [f"{name}=" for name in nodes(parsed_args)]
    from argcomplete.completers import FilesCompleter

    return [f"{node}={name}" for name in FilesCompleter()(prefix=path)]
