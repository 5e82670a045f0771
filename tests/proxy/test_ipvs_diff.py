"""`kubehop rules --diff` on a node in IPVS mode: its virtual servers and sets against kubehop's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import run

RULES = ["rules", "--mode", "ipvs", "--node", "node-a"]


def _node_dump(capsys: pytest.CaptureFixture[str]) -> str:
    """What a person pastes from the node: ipvsadm-save -n, ipset save, iptables-save."""
    assert run(RULES) == 0
    return capsys.readouterr().out.split("# ip addr show kube-ipvs0")[0]


def _diff(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = tmp_path / "node-a.rules"
    path.write_text(text)
    status = run([*RULES, "--diff", str(path)])
    return status, capsys.readouterr().out.replace(str(path), "node-a.rules").splitlines()


def test_the_nodes_own_state_is_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _diff(_node_dump(capsys), tmp_path, capsys)
    assert status == 0
    assert out[:5] == [
        "--- node-a: kube-proxy's IPVS table and ipsets as kubehop renders them",
        "+++ node-a.rules",
        "",
        "node-a: the IPVS table and kube-proxy's ipsets are what kube-proxy should have"
        " programmed for this cluster",
        "not compared: connection counters",
    ]
    assert out[-1] == (
        "node-a: kube-proxy's rules are what kube-proxy should have written for this cluster"
    )


def test_missing_stale_and_draining_real_servers_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _node_dump(capsys)
    # The node lost one of myapp-svc's endpoints and its set entry, kept an old pod of
    # svc-b, and drains another (weight 0, as kube-proxy's graceful termination leaves it).
    gone = "-a -t 10.101.100.50:80 -r 192.168.2.3:8080 -m -w 1\n"
    assert gone in text
    text = text.replace(gone, "").replace("add KUBE-CLUSTER-IP 10.101.100.50,tcp:80\n", "")
    kept = "-a -t 10.101.100.102:80 -r 192.168.1.3:8080 -m -w 1\n"
    lines = text.splitlines(keepends=True)
    at = lines.index(kept) + 1
    lines[at:at] = [
        "-a -t 10.101.100.102:80 -r 192.168.1.9:8080 -m -w 0\n",
        "-a -t 10.101.100.102:80 -r 192.168.1.8:8080 -m -w 1\n",
    ]
    status, out = _diff("".join(lines), tmp_path, capsys)
    assert status == 1
    assert out[2:9] == [
        "@@ virtual server TCP 10.101.100.50:80 @@",
        "--a -t 10.101.100.50:80 -r 192.168.2.3:8080 -m -w 1",
        "@@ virtual server TCP 10.101.100.102:80 @@",
        f"+-a -t 10.101.100.102:80 -r 192.168.1.8:8080 -m -w 1   (node-a.rules:{at + 2})",
        "@@ ipset KUBE-CLUSTER-IP @@",
        "-add KUBE-CLUSTER-IP 10.101.100.50,tcp:80",
        "",
    ]
    assert out[9:13] == [
        "node-a: 2 line(s) of IPVS state missing, 1 the cluster does not explain",
        "missing endpoint: 192.168.2.3:8080 of TCP 10.101.100.50:80 (default/myapp-svc)"
        " (in the EndpointSlices, not in the node's IPVS table)",
        "stale endpoint: 192.168.1.8:8080 of TCP 10.101.100.102:80 (in the node's IPVS table,"
        " in no EndpointSlice: kube-proxy has not synced, or the dump is older than the table)",
        "draining: 192.168.1.9:8080 of TCP 10.101.100.102:80 (weight 0: kube-proxy removes it"
        " once its connections end)",
    ]


def test_another_scheduler_is_a_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _node_dump(capsys).replace(
        "-A -t 10.101.100.102:80 -s rr", "-A -t 10.101.100.102:80 -s lc"
    )
    status, out = _diff(text, tmp_path, capsys)
    assert status == 1
    assert out[2:5] == [
        "@@ virtual server TCP 10.101.100.102:80 @@",
        "--A -t 10.101.100.102:80 -s rr",
        f"+-A -t 10.101.100.102:80 -s lc   (node-a.rules:{_line_of(text, '-s lc')})",
    ]


def test_without_ipset_save_the_sets_are_not_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = _node_dump(capsys)
    ipvsadm, rest = dump.split("# ipset save")
    iptables = rest[rest.index("# iptables-save") :]
    status, out = _diff(ipvsadm + iptables, tmp_path, capsys)
    assert out[4] == (
        "not compared: connection counters, and kube-proxy's ipsets (the file has no `ipset save`)"
    )
    assert out[3] == (
        "node-a: the IPVS table is what kube-proxy should have programmed for this cluster"
    )
    assert status == 0


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)
