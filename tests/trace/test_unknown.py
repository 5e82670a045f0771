"""Where the dump cannot tell: a selectorless Service without its endpoints in the dump.

`default/kubernetes` has no selector; a `kubectl cluster-info dump` holds
neither its EndpointSlices nor (sometimes) its Endpoints. kube-proxy on the
node knows them; the dump does not, so the trace says so instead of REJECTED.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address

from model.cluster import Cluster, Service, ServicePort
from model.trace import HopKind, Verdict
from sim.cluster.load import demo_cluster
from sim.trace.report import trace_json
from sim.trace.request import Request
from sim.trace.tracer import trace

KUBERNETES = Service(
    name="kubernetes",
    namespace="default",
    cluster_ip=IPv4Address("10.101.0.1"),
    ports=(ServicePort(name="https", port=443, target_port=6443),),
    selector=None,
    endpoints_known=False,
)

UNKNOWN = (
    "default/kubernetes has no selector, and the dump holds neither EndpointSlices nor"
    " Endpoints for it: its endpoints are unknown (kube-proxy on the node has them), so where"
    " the request goes kubehop cannot say; add them to the dump (kubectl get"
    " endpointslices,endpoints -A -o yaml)"
)


def with_kubernetes(known: bool) -> Cluster:
    demo = demo_cluster()
    fields = {name: getattr(demo, name) for name in Cluster.model_fields}
    service = KUBERNETES.model_copy(update={"endpoints_known": known})
    fields["services"] = (*demo.services, service)
    return Cluster(**fields)


def test_a_selectorless_service_without_endpoints_in_the_dump_is_unknown() -> None:
    t = trace(with_kubernetes(known=False), Request("pod1", "10.101.0.1:443", seed=1))
    assert t.verdict is Verdict.UNKNOWN
    assert t.reason == UNKNOWN
    assert t.hops[-1].kind is HopKind.UNKNOWN
    assert t.hops[-1].note == UNKNOWN
    data = json.loads(trace_json(t))
    assert data["verdict"] == "unknown"
    assert UNKNOWN in data["warnings"]


def test_the_same_service_known_to_have_no_endpoints_is_rejected() -> None:
    t = trace(with_kubernetes(known=True), Request("pod1", "10.101.0.1:443", seed=1))
    assert t.verdict is Verdict.REJECTED
    assert t.reason.startswith("REJECT in KUBE-SERVICES: default/kubernetes:https has no endpoints")


def test_the_api_server_listens_where_its_endpoints_say_assumed_and_said() -> None:
    # A `kubectl cluster-info dump` with the Endpoints added: kubeadm's API server
    # is a static hostNetwork pod declaring no port; default/kubernetes has no
    # selector, and its Endpoints list the control-plane node on 6443.
    from sim.cluster.load import load
    from tests import paths

    cluster = load(paths.REAL / "cluster-info-dump")
    t = trace(cluster, Request("default/web-7c5d8f6b9d-h2xkq", "kubernetes:443", seed=1))
    assert t.verdict is Verdict.DELIVERED
    assert t.endpoint == "10.0.0.10:6443"
    assumed = (
        "assumed: default/kubernetes's endpoints list 10.0.0.10:6443/tcp, so kubehop takes a"
        " process in k8s-cp to listen there; the dump cannot show listening sockets"
    )
    deliver = next(h for h in t.hops if h.kind is HopKind.DELIVER)
    assert deliver.note == assumed
    assert assumed in json.loads(trace_json(t))["warnings"]
