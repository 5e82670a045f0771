"""The article's four scenarios as presets on the demo cluster."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """A preset flow."""

    key: str
    """The key that starts it in the app."""
    title: str
    """A short title."""
    source: str
    """The source, as `kubehop trace` takes it."""
    destination: str
    """The destination."""
    container: str | None = None
    """The source container."""
    pick: str | None = None
    """The endpoint pinned, so the scenario shows what its title says."""

    @property
    def command(self) -> str:
        """The same flow as a `kubehop trace` command line."""
        return trace_command(self.source, self.destination, self.container, self.pick)


def trace_command(
    source: str, destination: str, container: str | None = None, pick: str | None = None
) -> str:
    """`kubehop trace SOURCE DESTINATION [-c CONTAINER] [--pick IP:PORT]`."""
    parts = ["kubehop", "trace", source, destination]
    if container:
        parts += ["-c", container]
    if pick:
        parts += ["--pick", pick]
    return " ".join(parts)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("1", "Containers in one pod (localhost)", "pod1", "localhost:8080", "container01"),
    Scenario(
        "2",
        "Pod to Service, endpoint on the same node",
        "pod1",
        "svc-b:80",
        pick="192.168.1.3:8080",
    ),
    Scenario(
        "3",
        "Pod to Service, endpoint on another node",
        "pod1",
        "svc-b:80",
        pick="192.168.2.2:8080",
    ),
    Scenario("4", "External client to NodePort", "client", "10.0.0.12:30080"),
)
"""Scenario 1: containers in a pod; 2: intra-node via a ClusterIP; 3: inter-node; 4: NodePort."""
