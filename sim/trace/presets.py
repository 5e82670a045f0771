"""The article's four scenarios as presets on the demo cluster."""

from __future__ import annotations

from dataclasses import dataclass

from sim.trace.request import Request


@dataclass(frozen=True)
class Preset:
    """One of the article's scenarios, on keys 1–4 in the app."""

    key: str
    """The key that starts it in the app."""
    title: str
    """A short title."""
    request: Request
    """The request it traces; a pinned endpoint makes it show what its title says."""

    @property
    def command(self) -> str:
        """The same request as a `kubehop trace` command line."""
        return self.request.command


PRESETS: tuple[Preset, ...] = (
    Preset(
        "1",
        "Containers in one pod (localhost)",
        Request("pod1", "localhost:8080", "container01"),
    ),
    Preset(
        "2",
        "Pod to Service, endpoint on the same node",
        Request("pod1", "svc-b:80", pick="192.168.1.3:8080"),
    ),
    Preset(
        "3",
        "Pod to Service, endpoint on another node",
        Request("pod1", "svc-b:80", pick="192.168.2.2:8080"),
    ),
    Preset("4", "External client to NodePort", Request("client", "10.0.0.12:30080")),
)
"""Scenario 1: containers in a pod; 2: intra-node via a ClusterIP; 3: inter-node; 4: NodePort."""
