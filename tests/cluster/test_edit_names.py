"""The names `+` and `d` give new pods, and the counts their messages state.

(sim/cluster/edits.py; kept here with the other issue-15 message checks.)
"""

from __future__ import annotations

import pytest

from model.cluster import Cluster, OwnerRef
from sim.cluster import edits
from sim.cluster.load import demo_cluster


def _owned_by(name: str) -> Cluster:
    """The demo with svc-b's pods owned by ReplicaSet `name`, as a dump could say."""
    demo = demo_cluster()
    fields = {field: getattr(demo, field) for field in Cluster.model_fields}
    fields["pods"] = tuple(
        p.model_copy(update={"owner": OwnerRef(kind="ReplicaSet", name=name)})
        if p.owner is not None and p.owner.name == "backend-5d8f7b"
        else p
        for p in demo.pods
    )
    return Cluster(**fields)


@pytest.mark.parametrize(
    "owner", ["Backend_1", "backend 1", "backend\x1b[2J", "-backend", "a" * 254]
)
def test_an_owner_name_no_replicaset_could_have_is_refused(owner: str) -> None:
    cluster = _owned_by(owner)
    with pytest.raises(edits.EditError) as scaled:
        edits.scale(cluster, "default", owner, delta=1)
    with pytest.raises(edits.EditError) as deleted:
        edits.delete_pod(cluster, "default", "pod4")
    message = (
        f"ReplicaSet {owner!r} (owner of pod default/pod2) cannot name new pods: its name must be"
        " a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending"
        " with a letter or digit, at most 253 characters"
    )
    assert str(scaled.value) == message.replace("\x1b", "\\x1b")
    assert str(deleted.value) == message.replace("pod2", "pod4").replace("\x1b", "\\x1b")


def test_a_long_owner_name_is_cut_as_the_api_server_cuts_generate_name() -> None:
    owner = "backend-" + "x" * 60
    result = edits.scale(_owned_by(owner), "default", owner, delta=1, seed=1)
    (pod,) = result.added
    assert len(pod.name) == 63
    assert pod.name.startswith(owner[:58]) and pod.name[58:].isalnum()


def test_one_replica_is_one_replica() -> None:
    cluster = edits.scale(demo_cluster(), "default", "backend-5d8f7b", replicas=1).cluster
    same = edits.scale(cluster, "default", "backend-5d8f7b", replicas=1)
    assert same.summary == "ReplicaSet backend-5d8f7b already has 1 replica"
    with pytest.raises(edits.EditError) as err:
        edits.scale(cluster, "default", "backend-5d8f7b", delta=-2)
    assert str(err.value) == "backend-5d8f7b has 1 replica; cannot scale to -1"
