"""`kubehop rules --diff` on a node in nftables mode: its `ip kube-proxy` table against kubehop's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import run


def _node_table(capsys: pytest.CaptureFixture[str]) -> str:
    assert run(["rules", "--mode", "nftables", "--node", "node-a"]) == 0
    return capsys.readouterr().out


def test_the_nodes_own_table_listed_otherwise_is_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # nft lists a map's elements in its own order and line breaks, and counts packets.
    text = _node_table(capsys).replace(
        "ct state new jump firewall-check",
        "ct state new counter packets 12 bytes 720 jump firewall-check",
    )
    path = tmp_path / "node-a.rules"
    path.write_text(text)
    assert run(["rules", "--mode", "nftables", "--node", "node-a", "--diff", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == (
        "node-a: kube-proxy's nft table is what kube-proxy should have written for this cluster"
    )


def test_a_stale_endpoint_and_a_missing_service_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _node_table(capsys)
    # The node never got default/sticky's element, and still has a chain for an old pod.
    text = text.replace(
        "\t\t\t     10.101.100.90 . tcp . 80 : goto service-EDE2N7RF-default/sticky/tcp/,\n", ""
    )
    stale = (
        "\tchain endpoint-AAAAAAAA-default/svc-b/tcp/http__192.168.2.9/8080 {\n"
        "\t\tip saddr 192.168.2.9 jump mark-for-masquerade\n"
        "\t\tmeta l4proto tcp dnat to 192.168.2.9:8080\n"
        "\t}\n"
    )
    text = text.replace("\tchain endpoint-S2DO7VAZ", stale + "\n\tchain endpoint-S2DO7VAZ", 1)
    path = tmp_path / "node-a.rules"
    path.write_text(text)
    assert run(["--mode", "nftables", "rules", "--node", "node-a", "--diff", str(path)]) == 1
    out = capsys.readouterr().out
    assert "@@ table ip kube-proxy map service-ips @@\n" in out
    assert "-10.101.100.90 . tcp . 80 : goto service-EDE2N7RF-default/sticky/tcp/\n" in out
    stale_line = text.splitlines().index(stale.splitlines()[0]) + 1
    assert f"+meta l4proto tcp dnat to 192.168.2.9:8080   ({path}:{stale_line + 2})\n" in out
    assert (
        "node-a: 1 line(s) of kube-proxy's nft table missing, 3 the cluster does not explain\n"
        in out
    )
    assert (
        "stale endpoint: 192.168.2.9:8080 (default/svc-b/tcp/http) (in the node's table, in no"
        " EndpointSlice" in out
    )


def test_a_file_without_kube_proxys_table_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node-a.rules"
    path.write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    assert run(["--mode", "nftables", "rules", "--node", "node-a", "--diff", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"node-a: {path} holds no table ip kube-proxy (give `nft list ruleset` of the node; is"
        " its kube-proxy in nftables mode?)"
    )


def test_the_file_decides_the_mode_when_the_cluster_file_says_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node-a.rules"
    path.write_text(_node_table(capsys))
    assert run(["rules", "--node", "node-a", "--diff", str(path)]) == 0
    assert capsys.readouterr().err == (
        f"kubehop: {path} holds kube-proxy's nft table: comparing in nftables mode, not the"
        " cluster file's iptables\n"
    )
