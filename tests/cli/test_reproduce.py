"""`--reproduce` prints commands for a root shell: every name in them is quoted, every bridge name one Linux takes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests import paths
from tui.cli import run

DEMO = paths.ROOT / "model" / "demo_cluster.yaml"


def _with_bridge(tmp_path: Path, bridge: str) -> tuple[Path, int]:
    """The demo with its CNIConfig's bridge set to `bridge` (a YAML scalar), and that line."""
    text = DEMO.read_text()
    assert text.count("bridge: cni0") == 1
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace("bridge: cni0", f"bridge: {bridge}"))
    return path, text[: text.index("bridge: cni0")].count("\n") + 1


def test_a_bridge_name_a_shell_would_act_on_is_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `x;reboot;` is a name Linux gives an interface: the shell must see it as one word.
    cluster, _ = _with_bridge(tmp_path, "'x;reboot;'")
    argv = ["trace", "pod1", "svc-b:80", "--seed", "2", "--reproduce", "--cluster", str(cluster)]
    assert run(argv) == 0
    out = capsys.readouterr().out
    commands = out[out.index("# Confirm") :]
    assert commands == (
        "# Confirm `kubehop trace pod1 svc-b:80 --seed 2` on the cluster.\n"
        "\n"
        "# 1. send the request (from your machine):\n"
        "kubectl exec -n default pod1 -- nc -vz -w 2 10.101.100.102 80\n"
        "\n"
        "# 2. on node-a (ssh node-a, as root), before sending:\n"
        "iptables -t raw -I PREROUTING -p tcp -s 192.168.1.2 -d 10.101.100.102 --dport 80 -j TRACE\n"
        "xtables-monitor --trace   # iptables-nft; with iptables-legacy: dmesg -w | grep TRACE\n"
        "conntrack -L -p tcp -d 10.101.100.102 --dport 80   # the NAT mapping\n"
        "tcpdump -ni 'x;reboot;' 'tcp and host 192.168.1.3 and port 8080'\n"
        "tcpdump -ni veth8c71ec12 'tcp and host 192.168.1.3 and port 8080'\n"
        "# afterwards, remove the TRACE rules:\n"
        "iptables -t raw -D PREROUTING -p tcp -s 192.168.1.2 -d 10.101.100.102 --dport 80 -j TRACE\n"
        "\n"
        "# kubehop expects: DELIVERED: pod1/container01 reached 192.168.1.3:8080 through"
        " 10.101.100.102:80, and the reply came back from 10.101.100.102:80\n"
        "# (interface names are kubehop's; on a node `ip route get <pod IP>` names the real veth)\n"
    )
    tcpdump = next(line for line in commands.splitlines() if line.startswith("tcpdump"))
    assert shlex.split(tcpdump) == [
        "tcpdump",
        "-ni",
        "x;reboot;",
        "tcp and host 192.168.1.3 and port 8080",
    ]


def test_every_command_line_splits_into_the_words_it_was_built_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Scenario 4 crosses two nodes: an external client, no kubectl line.
    assert run(["trace", "client", "10.0.0.12:30080", "--seed", "1", "--reproduce"]) == 0
    out = capsys.readouterr().out
    commands = [
        line.split("   #")[0]
        for line in out[out.index("# Confirm") :].splitlines()
        if line and not line.startswith("#")
    ]
    assert "tcpdump -ni cni0 'tcp and host 192.168.3.3 and port 8080'" in commands
    for line in commands:
        assert shlex.join(shlex.split(line)) == line


RULE = (
    "must be an interface name Linux accepts: 1-15 bytes, not '.' or '..',"
    " no '/', ':', whitespace or control characters"
)


@pytest.mark.parametrize(
    ("bridge", "shown"),
    [
        ("'a b'", "'a b'"),
        ('"a\\tb"', "'a\\tb'"),
        ('"br\\e[2J"', "'br\\x1b[2J'"),
        ('"br\\x9b"', "'br\\x9b'"),
        ("a/b", "'a/b'"),
        ("'a:b'", "'a:b'"),
        ("'.'", "'.'"),
        ("'..'", "'..'"),
        ("''", "''"),
        ("abcdefghijklmnop", "'abcdefghijklmnop'"),
        # 15 characters, 16 bytes: IFNAMSIZ counts bytes.
        ("éééééééé", "'éééééééé'"),
    ],
    ids=[
        "space",
        "tab",
        "ESC",
        "C1",
        "slash",
        "colon",
        "dot",
        "dotdot",
        "empty",
        "16 characters",
        "16 bytes",
    ],
)
def test_a_bridge_name_linux_refuses_is_one_line_with_its_place(
    bridge: str, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, line = _with_bridge(tmp_path, bridge)
    assert run(["rules", "--cluster", str(cluster)]) == 2
    assert capsys.readouterr().err == (
        f"kubehop: error: {cluster}:{line}: CNIConfig cni: spec.bridge: {shown} {RULE}\n"
    )


@pytest.mark.parametrize("bridge", ["cni0", "'x;reboot;'", "br-0123456789ab", "ééééééé"])
def test_a_bridge_name_linux_takes_is_read(
    bridge: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _ = _with_bridge(tmp_path, bridge)
    assert run(["rules", "--cluster", str(cluster)]) == 0
    assert capsys.readouterr().err == ""
