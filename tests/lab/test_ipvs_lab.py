"""IPVS mode in the real-kernel lab.

Where the kernel has IPVS the lab builds each node as kube-proxy leaves it (sysctls,
kube-ipvs0 with its addresses, ipsets, iptables rules, virtual servers) and verifies flows;
where it has not, building says why and the IPVS checks skip with that reason.

Most tests here need no root: they run the lab's builder with every command recorded
instead of run, and check what it would ask of the kernel, in which order. The rest run
in real lab namespaces: kube-proxy's sets and rules load on any kernel with ipset, the
virtual servers only where IPVS is.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from model.cluster import Cluster, ProxyMode
from model.packet import Proto
from sim.cluster.load import demo_cluster
from sim.cluster.network import ClusterNetwork, node_ns_name
from sim.cluster.rules import node_rules
from sim.lab import build as lab_build
from sim.lab import ipvs as lab_ipvs
from sim.lab import nfacct
from sim.lab.build import Lab, build, restore_sets, teardown
from sim.lab.failures import LabUnavailable
from sim.lab.ipvs import (
    IPVS_PROC,
    ipvs_sysctls,
    restore_text,
    round_robin_differences,
    sets_differences,
    timeouts_args,
)
from sim.lab.netns import add_netns, delete_netns, in_netns, lab_netns
from sim.proxy.ipvs import RenderedIpvsRules
from tests.lab.support import require_lab


def _ipvs(cluster: Cluster, **config: object) -> Cluster:
    kube_proxy = cluster.kube_proxy.model_copy(update={"mode": ProxyMode.IPVS, **config})
    return cluster.model_copy(update={"kube_proxy": kube_proxy})


def ipvs_demo(**config: object) -> Cluster:
    """The demo with kube-proxy in IPVS mode (rr)."""
    return _ipvs(demo_cluster(), **config)


def _rules(cluster: Cluster, node: str) -> RenderedIpvsRules:
    rules = node_rules(cluster, node)
    assert isinstance(rules, RenderedIpvsRules)
    return rules


def _listing(cluster: Cluster, node: str, command: str) -> str:
    return next(i.text for i in _rules(cluster, node).listings if i.command == command)


# -- the builder's commands, recorded (no root needed) ------------------------------------


@dataclass(frozen=True)
class Command:
    """One thing the builder asked of the kernel, in one netns."""

    netns: str
    argv: tuple[str, ...]
    stdin: str | None = None


class Recorder:
    """Stands in for the kernel: records every command; IPVS is there unless told not."""

    def __init__(self, *, has_ipvs: bool = True) -> None:
        self.commands: list[Command] = []
        self.deleted: list[str] = []
        self.has_ipvs = has_ipvs

    def ip(self, netns: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
        self.commands.append(Command(netns, ("ip", *args), stdin))
        return ""

    def in_netns(
        self,
        netns: str,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float = 0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        self.commands.append(Command(netns, tuple(argv), stdin))
        missing = tuple(argv) == ("cat", IPVS_PROC) and not self.has_ipvs
        return subprocess.CompletedProcess(list(argv), 1 if missing else 0, "", "")

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        self.commands.append(Command(netns, ("sysctl", "-w", f"{key}={value}")))

    def add_netns(self, netns: str) -> None:
        self.commands.append(Command(netns, ("ip", "netns", "add", netns)))

    def add_counter(self, netns: str, counter: str) -> None:
        self.commands.append(Command(netns, ("nfacct", "add", counter)))

    def delete_netns(self, netns: str) -> None:
        self.deleted.append(netns)

    def in_(self, netns: str) -> list[Command]:
        return [c for c in self.commands if c.netns == netns]

    def index(self, netns: str, argv_start: tuple[str, ...]) -> int:
        """Where in the whole sequence the first such command in `netns` is."""
        for at, command in enumerate(self.commands):
            if command.netns == netns and command.argv[: len(argv_start)] == argv_start:
                return at
        raise AssertionError(f"no {' '.join(argv_start)} in {netns}")


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    recorder = Recorder()
    monkeypatch.setenv("KUBEHOP_LAB_DIR", str(tmp_path))
    for module in (lab_build, lab_ipvs):
        monkeypatch.setattr(module, "in_netns", recorder.in_netns)
    monkeypatch.setattr(lab_build, "ip", recorder.ip)
    monkeypatch.setattr(lab_build, "set_sysctl", recorder.set_sysctl)
    monkeypatch.setattr(lab_build, "get_sysctl", lambda netns, key: "0")
    monkeypatch.setattr(lab_build, "add_netns", recorder.add_netns)
    monkeypatch.setattr(lab_build, "delete_netns", recorder.delete_netns)
    monkeypatch.setattr(lab_build, "lab_netns", lambda: [])
    monkeypatch.setattr(lab_build, "check_host", lambda: None)
    monkeypatch.setattr(lab_build, "compare_with_topology", lambda netns, topo: [])
    monkeypatch.setattr(nfacct, "add_counter", recorder.add_counter)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/sbin/{tool}")
    monkeypatch.setattr(lab_ipvs, "dummy_available", lambda: True)
    monkeypatch.setattr(lab_ipvs, "kernel_release", lambda: "6.1.0-18-amd64")
    return recorder


def _built(cluster: Cluster) -> Lab:
    return build(cluster, "demo.yaml (ipvs mode)", persistent=False)


def test_each_node_gets_kube_ipvs0_down_with_the_bound_addresses(kernel: Recorder) -> None:
    cluster = ipvs_demo()
    lab = _built(cluster)
    for node in ("node-a", "node-b", "node-c"):
        ns = lab.node_netns[node]
        links = [c.argv for c in kernel.in_(ns) if c.argv[:3] == ("ip", "link", "add")]
        mac = ClusterNetwork(cluster).netns(node_ns_name(node)).iface("kube-ipvs0").mac
        assert ("ip", "link", "add", "kube-ipvs0", "address", mac, "type", "dummy") in links
        added = [
            c.argv[3]
            for c in kernel.in_(ns)
            if c.argv[:2] == ("ip", "addr") and "kube-ipvs0" in c.argv
        ]
        # Each address as `ip addr show kube-ipvs0` renders it: a /32, in the table's order.
        shown = _listing(cluster, node, "ip addr show kube-ipvs0")
        assert added == [line.split()[1] for line in shown.splitlines() if "inet " in line]
        assert added == [f"{a}/32" for a in _rules(cluster, node).ipvs.bound]
        # kube-proxy leaves it down; the addresses are local all the same.
        assert not [c for c in kernel.in_(ns) if c.argv[-2:] == ("kube-ipvs0", "up")]
    assert "10.101.100.102/32" in added


def test_nodes_get_the_sysctls_kube_proxy_sets_in_ipvs_mode(kernel: Recorder) -> None:
    lab = _built(ipvs_demo())
    ns = lab.node_netns["node-b"]
    ipvs_keys = [c.argv[2] for c in kernel.in_(ns) if c.argv[0] == "sysctl" and ".vs." in c.argv[2]]
    # Kernel 6.1: conn_reuse_mode is left as it is (kube-proxy sets it on 4.1 to 5.8 only).
    assert ipvs_keys == [
        "net.ipv4.vs.conntrack=1",
        "net.ipv4.vs.expire_nodest_conn=1",
        "net.ipv4.vs.expire_quiescent_template=1",
    ]
    sysctls = [c.argv[2] for c in kernel.in_(ns) if c.argv[0] == "sysctl"]
    assert "net.ipv4.ip_forward=1" in sysctls
    # IPVS mode serves no NodePort on 127.0.0.1: no route_localnet, and no strictARP here.
    assert not [s for s in sysctls if "route_localnet" in s or "arp_" in s]
    # Never outside the lab's namespaces, and the pods' namespaces get none of them.
    pod_ns = lab.netns("pod/default/pod1")
    assert not [c for c in kernel.in_(pod_ns) if ".vs." in " ".join(c.argv)]


def test_conn_reuse_mode_and_strict_arp_as_kube_proxy_sets_them() -> None:
    config = ipvs_demo(ipvs_strict_arp=True).kube_proxy
    assert ipvs_sysctls(config, "5.4.0-150-generic") == [
        ("net.ipv4.vs.conntrack", "1"),
        ("net.ipv4.vs.conn_reuse_mode", "0"),
        ("net.ipv4.vs.expire_nodest_conn", "1"),
        ("net.ipv4.vs.expire_quiescent_template", "1"),
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.arp_ignore", "1"),
        ("net.ipv4.conf.all.arp_announce", "2"),
    ]
    for release in ("5.9.0", "6.18.44-fc-v1045", "4.0.9"):
        keys = [key for key, _ in ipvs_sysctls(config, release)]
        assert "net.ipv4.vs.conn_reuse_mode" not in keys, release


def test_sets_come_before_the_rules_that_match_them_and_servers_come_last(
    kernel: Recorder,
) -> None:
    cluster = ipvs_demo()
    lab = _built(cluster)
    for node, ns in lab.node_netns.items():
        restores = [c for c in kernel.in_(ns) if c.argv == ("ipset", "restore")]
        # kube-proxy's sets exactly as `ipset save` renders them for the node.
        assert [c.stdin for c in restores] == [_listing(cluster, node, "ipset save")]
        iptables = [c for c in kernel.in_(ns) if c.argv[0] == "iptables-restore"]
        assert [c.stdin for c in iptables] == [node_rules(cluster, node).text]
        sets = kernel.index(ns, ("ipset", "restore"))
        rules = kernel.index(ns, ("iptables-restore",))
        servers = kernel.index(ns, ("ipvsadm", "-R"))
        last_address = max(
            at
            for at, c in enumerate(kernel.commands)
            if c.netns == ns and c.argv[:3] == ("ip", "addr", "add") and "kube-ipvs0" in c.argv
        )
        device = kernel.index(ns, ("ip", "link", "add", "kube-ipvs0"))
        assert device < last_address < servers
        assert sets < rules < servers
        # IPVS was looked for inside a node's netns before any IPVS sysctl was written.
        probe = kernel.commands.index(Command(lab.node_netns["node-a"], ("cat", IPVS_PROC)))
        first_vs = next(at for at, c in enumerate(kernel.commands) if ".vs." in " ".join(c.argv))
        assert probe < first_vs


def test_the_virtual_servers_are_the_rendered_ipvsadm_save(kernel: Recorder) -> None:
    cluster = ipvs_demo()
    lab = _built(cluster)
    ns = lab.node_netns["node-a"]
    (restore,) = [c for c in kernel.in_(ns) if c.argv == ("ipvsadm", "-R")]
    saved = _listing(cluster, "node-a", "ipvsadm-save -n")
    assert restore.stdin is not None
    # The same lines as `ipvsadm-save -n` prints, virtual servers in its order…
    assert sorted(restore.stdin.splitlines()) == sorted(saved.splitlines())
    heads = [line for line in restore.stdin.splitlines() if line.startswith("-A ")]
    assert heads == [line for line in saved.splitlines() if line.startswith("-A ")]
    # …each one's real servers added in the reverse of kubehop's list: the kernel puts a new
    # one at the head, so it then walks them in kubehop's order.
    svc_b = [line.split()[4] for line in restore.stdin.splitlines()
             if line.startswith("-a -t 10.101.100.102:80 ")]  # fmt: skip
    assert svc_b == ["192.168.2.2:8080", "192.168.1.4:8080", "192.168.1.3:8080"]
    vs = _rules(cluster, "node-a").ipvs.lookup(Proto.TCP, IPv4Address("10.101.100.102"), 80)
    assert vs is not None
    assert [rs.addr for rs in vs.real_servers] == svc_b[::-1]
    # ipvsadm runs only where the netns was just seen to have IPVS (else it would modprobe).
    at = kernel.commands.index(restore)
    assert kernel.commands[at - 1] == Command(ns, ("cat", IPVS_PROC))
    assert not [c for c in kernel.commands if c.argv[:2] == ("ipvsadm", "--set")]


def test_restore_text_keeps_the_text_of_a_table_it_does_not_know() -> None:
    table = _rules(ipvs_demo(), "node-a").ipvs
    text = "-A -t 10.9.9.9:80 -s rr\n-a -t 10.9.9.9:80 -r 10.1.1.1:80 -m -w 1\n"
    assert restore_text(table, text) == text
    assert restore_text(table, "") == ""


def test_ipvs_timeouts_are_set_when_configured(kernel: Recorder) -> None:
    cluster = ipvs_demo(ipvs_timeouts=(900, 0, 30))
    assert timeouts_args(cluster.kube_proxy) == ["--set", "900", "0", "30"]
    assert timeouts_args(ipvs_demo().kube_proxy) is None
    lab = _built(cluster)
    ns = lab.node_netns["node-c"]
    assert kernel.index(ns, ("ipvsadm", "--set", "900", "0", "30")) < kernel.index(
        ns, ("ipvsadm", "-R")
    )


def test_without_ipvs_the_lab_says_why_and_leaves_nothing(kernel: Recorder, tmp_path: Path) -> None:
    kernel.has_ipvs = False
    with pytest.raises(LabUnavailable, match=r"IPVS mode.*no /proc/net/ip_vs in a lab namespace"):
        _built(ipvs_demo())
    made = [c.netns for c in kernel.commands if c.argv[:3] == ("ip", "netns", "add")]
    assert made and sorted(kernel.deleted) == sorted(made)
    # Nothing asked IPVS anything, nothing was set, no device made.
    assert not [c for c in kernel.commands if c.argv[0] in ("ipvsadm", "sysctl")]
    assert not [c for c in kernel.commands if c.argv[:3] == ("ip", "link", "add")]
    assert not list(tmp_path.glob("lab-*.json"))


def test_ipvsadm_is_never_run_where_ipvs_is_not(kernel: Recorder) -> None:
    kernel.has_ipvs = False
    with pytest.raises(LabUnavailable, match="no /proc/net/ip_vs"):
        lab_ipvs.ipvsadm("kh-abcdef-n-node-a", ["-S", "-n"])
    assert [c.argv for c in kernel.commands] == [("cat", IPVS_PROC)]


def test_lab_down_deletes_the_namespaces_that_hold_the_ipvs_state(kernel: Recorder) -> None:
    # The virtual servers, connections, sets, rules, sysctls and kube-ipvs0 all belong to a
    # node's netns; the kernel drops them when the netns is deleted.
    lab = _built(ipvs_demo())
    nodes = set(lab.node_netns.values())
    teardown(lab.state)
    assert nodes <= set(kernel.deleted)
    assert set(kernel.deleted) == set(lab.state.all_netns)
    assert not lab.state.path.exists()


def test_iptables_mode_is_built_as_before(kernel: Recorder) -> None:
    lab = _built(demo_cluster())
    assert not [c for c in kernel.commands if c.argv[0] == "ipvsadm" or "kube-ipvs0" in c.argv]
    assert not [c for c in kernel.commands if ".vs." in " ".join(c.argv)]
    # iptables mode still serves NodePorts on 127.0.0.1, with the sysctl that needs.
    node_a = lab.node_netns["node-a"]
    assert Command(node_a, ("sysctl", "-w", "net.ipv4.conf.all.route_localnet=1")) in (
        kernel.commands
    )
    assert lab.state.ready


# -- what verify compares ------------------------------------------------------------------


def test_round_robin_is_the_same_cycle_from_any_point() -> None:
    sim = ["a", "b", "c", "a", "b", "c", "a"]
    assert round_robin_differences(["b", "c", "a", "b", "c"], sim) == []
    assert round_robin_differences(["a", "b", "c"], sim) == []
    (wrong,) = round_robin_differences(["a", "c", "b", "a"], sim)
    assert wrong == "round-robin: kubehop cycles a → b → c; the kernel answered a → c → b → a"
    # Random-looking answers over the right endpoints are not round-robin.
    assert round_robin_differences(["a", "a", "b"], ["a", "b", "a"])
    assert round_robin_differences([], sim) == []


def test_ipset_save_is_compared_set_by_set() -> None:
    rendered = (
        "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\nadd KUBE-NODE-PORT-TCP 30080\n"
        "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n"
        "add KUBE-CLUSTER-IP 10.96.0.1,tcp:443\nadd KUBE-CLUSTER-IP 10.96.0.10,udp:53\n"
    )
    # ipset 7.11+ adds bucketsize and a random initval; a hash set prints in hash order.
    saved = (
        "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\nadd KUBE-NODE-PORT-TCP 30080\n"
        "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536"
        " bucketsize 12 initval 0x5c2ad2e8\n"
        "add KUBE-CLUSTER-IP 10.96.0.10,udp:53\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n"
        "create cali40all-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576\n"
    )
    assert sets_differences(rendered, saved) == []
    assert sets_differences(rendered, saved.replace("10.96.0.10,udp:53", "10.96.0.10,tcp:53")) == [
        "set KUBE-CLUSTER-IP: missing 10.96.0.10,udp:53; extra 10.96.0.10,tcp:53"
    ]
    assert sets_differences(rendered, "") == [
        "ipset save has no set KUBE-NODE-PORT-TCP",
        "ipset save has no set KUBE-CLUSTER-IP",
    ]


# -- in the real kernel ----------------------------------------------------------------------


def _modules() -> str:
    path = Path("/proc/modules")
    return path.read_text() if path.exists() else ""


def _root_namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.mark.lab
def test_ipvs_needs_the_kernels_ip_vs_and_never_loads_it() -> None:
    require_lab()
    from sim.lab.ipvs import ipvs_unavailable

    modules_before = _modules()
    namespaces_before = _root_namespaces()
    reason = ipvs_unavailable()
    # The probe leaves nothing behind and loads no module.
    assert _root_namespaces() == namespaces_before
    assert _modules() == modules_before
    if reason is not None:
        assert any(word in reason for word in ("/proc/net/ip_vs", "ipvsadm", "dummy")), reason
        if "/proc/net/ip_vs" in reason and os.path.exists("/proc/net/ip_vs"):
            pytest.fail(f"the host has IPVS, yet the lab namespace says: {reason}")
        pytest.skip(f"IPVS lab checks cannot run here: {reason}")


@pytest.mark.lab
def test_where_the_kernel_has_no_ipvs_lab_up_says_so_and_leaves_nothing() -> None:
    require_lab()
    from sim.lab.ipvs import ipvs_unavailable

    if ipvs_unavailable() is None:
        pytest.skip("the kernel has IPVS: the IPVS lab itself is tested below")
    before = set(lab_netns())
    with pytest.raises(LabUnavailable, match="IPVS mode") as raised:
        build(ipvs_demo(), "demo.yaml (ipvs mode)", persistent=False)
    assert set(lab_netns()) == before, str(raised.value)


@pytest.fixture
def lab_ns() -> Iterator[str]:
    require_lab()
    name = f"kh-{secrets.token_hex(3)}-n-ipvs-sets"
    add_netns(name)
    try:
        yield name
    finally:
        delete_netns(name)


@pytest.mark.lab
@pytest.mark.parametrize("node", ["node-a", "node-b"])
def test_kube_proxys_sets_and_rules_load_and_print_back(lab_ns: str, node: str) -> None:
    # Needs ipset and iptables in the kernel, not IPVS: the sets kube-proxy creates (bitmap
    # ports, ip,port,ip…) restore from the rendered `ipset save`, then the rules matching
    # them load, and both print back as kubehop renders them.
    cluster = ipvs_demo()
    rules = _rules(cluster, node)
    restore_sets(lab_ns, rules)
    in_netns(lab_ns, ["iptables-restore", "-w", "5"], stdin=rules.text)
    saved = in_netns(lab_ns, ["ipset", "save"]).stdout
    assert sets_differences(_listing(cluster, node, "ipset save"), saved) == []
    assert "add KUBE-NODE-PORT-TCP 30080" in saved
    printed = [
        line[: line.rindex("[")] + "[0:0]" if line.startswith(":") else line
        for line in in_netns(lab_ns, ["iptables-save"]).stdout.splitlines()
        if not line.startswith("#")
    ]
    assert printed == rules.text.splitlines()


# -- the whole lab, where the kernel has IPVS ------------------------------------------------


@pytest.fixture(scope="module")
def ipvs_lab() -> Iterator[object]:
    require_lab()
    from sim.lab.probe import Listeners
    from sim.lab.verify import Verifier

    try:
        lab = build(ipvs_demo(), "demo.yaml (ipvs mode)", persistent=False)
    except LabUnavailable as err:
        pytest.skip(f"IPVS lab checks cannot run here: {err}")
    try:
        verifier = Verifier(lab)
        with Listeners(verifier.listen_specs()):
            yield verifier
    finally:
        teardown(lab.state)


@pytest.mark.lab
def test_ipvs_mode_agrees_with_the_kernel(ipvs_lab: object) -> None:
    from sim.lab.cases import spreads, standard_cases
    from sim.lab.verify import Verifier

    assert isinstance(ipvs_lab, Verifier)
    checks = ipvs_lab.rules()
    assert {c.name for c in checks} >= {
        "rules on node-a: ipvsadm-save -n",
        "rules on node-a: ipset save",
    }
    checks += [ipvs_lab.check(case) for case in standard_cases(ipvs_lab.cluster)]
    # rr: connection after connection, the kernel follows kubehop's cycle.
    checks += [ipvs_lab.spread(s) for s in spreads(ipvs_lab.cluster)]
    wrong = [f"{c.name}: {'; '.join(c.differences)}" for c in checks if not c.agree]
    assert not wrong, "\n".join(wrong)
