"""The article's four scenarios as presets on the demo cluster, each with a headline and a goal."""

from __future__ import annotations

from model.frozen import frozen
from sim.trace.request import Request


@frozen
class Preset:
    """One of the article's scenarios, on keys 1–4 in the app."""

    key: str
    """The key that starts it in the app."""
    title: str
    """A short title, for menus and the `kubehop scenarios` listing."""
    request: Request
    """The request it traces; a chosen endpoint makes it show what its title says."""
    story: str = ""
    """What happens, as a phrase that completes `Scenario N — …`."""
    goal: str = ""
    """What a learner should see by the end, in one line."""

    @property
    def command(self) -> str:
        """The same request as a `kubehop trace` command line."""
        return self.request.command

    @property
    def headline(self) -> str:
        """`Scenario 3 — a pod calls a Service whose endpoint is on another node`."""
        return f"Scenario {self.key} — {self.story or self.title}"

    @property
    def chosen(self) -> str | None:
        """Why the scenario always reaches the same endpoint, when it does; None otherwise.

        A Service's rules choose an endpoint at random; a scenario that must show
        one case (same node, another node) takes the endpoint that shows it.
        """
        if self.request.pick is None:
            return None
        return (
            f"endpoint {self.request.pick} chosen for this scenario: kube-proxy's rules pick"
            " one of the Service's endpoints at random, and this one shows the case"
        )


PRESETS: tuple[Preset, ...] = (
    Preset(
        "1",
        "Containers in one pod (localhost)",
        Request("pod1", "localhost:8080", "container01"),
        story="two containers of one pod talk over localhost",
        goal="See that a pod's containers share one network namespace: the packet loops"
        " through lo and never reaches the node or its rules.",
    ),
    Preset(
        "2",
        "Pod to Service, endpoint on the same node",
        Request("pod1", "svc-b:80", pick="192.168.1.3:8080"),
        story="a pod calls a Service whose endpoint is on the same node",
        goal="Watch kube-proxy's DNAT turn the ClusterIP into a pod's address, and the node's"
        " bridge carry the packet to that pod without leaving the node.",
    ),
    Preset(
        "3",
        "Pod to Service, endpoint on another node",
        Request("pod1", "svc-b:80", pick="192.168.2.2:8080"),
        story="a pod calls a Service whose endpoint is on another node",
        goal="Follow the DNAT on the sender's node, the route across to the endpoint's node,"
        " and conntrack undoing the DNAT when the reply comes back.",
    ),
    Preset(
        "4",
        "External client to NodePort",
        Request("client", "10.0.0.12:30080"),
        story="a client outside the cluster calls a NodePort",
        goal="See the NodePort's DNAT and the MASQUERADE that makes the endpoint answer"
        " through the node the client called, where both are undone.",
    ),
)
"""Scenario 1: containers in a pod; 2: intra-node via a ClusterIP; 3: inter-node; 4: NodePort."""


def preset_for(key: str) -> Preset | None:
    """The scenario on key `key` (`"3"`), or None."""
    return next((p for p in PRESETS if p.key == key), None)
