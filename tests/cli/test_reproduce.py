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
        "# 1. on node-a (ssh node-a, as root), before sending; each watcher runs until\n"
        "#    Ctrl-C, so start each in a terminal of its own:\n"
        "iptables -t raw -I PREROUTING -p tcp -s 192.168.1.2 -d 10.101.100.102 --dport 80 -j TRACE\n"
        "xtables-monitor --trace   # iptables-nft; with iptables-legacy: dmesg -w | grep TRACE\n"
        "conntrack -E -p tcp -d 10.101.100.102 --dport 80"
        "   # the connection as conntrack records it, NAT included\n"
        "tcpdump -ni 'x;reboot;' 'tcp and host 192.168.1.3 and port 8080'\n"
        "tcpdump -ni veth8c71ec12 'tcp and host 192.168.1.3 and port 8080'\n"
        "\n"
        "# 2. send the request (from your machine):\n"
        "kubectl exec -n default pod1 -c container01 -- nc -vz -w 2 10.101.100.102 80\n"
        "\n"
        "# 3. afterwards, on node-a, remove the TRACE rules:\n"
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


def _commands(out: str) -> list[str]:
    """The reproduce section's lines, from its first comment on."""
    return out[out.index("# Confirm") :].splitlines()


def test_the_capture_is_set_up_before_the_request_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["trace", "pod1", "svc-b:80", "--pick", "192.168.2.2:8080", "--seed", "1"]
    assert run([*argv, "--reproduce"]) == 0
    lines = _commands(capsys.readouterr().out)
    send = next(i for i, line in enumerate(lines) if line.startswith("kubectl exec"))
    for watcher in ("iptables -t raw -I ", "xtables-monitor", "conntrack -E ", "tcpdump "):
        assert max(i for i, line in enumerate(lines) if line.startswith(watcher)) < send, watcher
    assert min(i for i, line in enumerate(lines) if line.startswith("iptables -t raw -D ")) > send
    # Each node's conntrack sees the packet as it arrives there: node-b after node-a's DNAT.
    assert [line for line in lines if line.startswith("conntrack")] == [
        "conntrack -E -p tcp -d 10.101.100.102 --dport 80"
        "   # the connection as conntrack records it, NAT included",
        "conntrack -E -p tcp -d 192.168.2.2 --dport 8080"
        "   # the connection as conntrack records it, NAT included",
    ]


@pytest.mark.parametrize(
    ("argv", "send"),
    [
        (
            ["pod1", "localhost:8080", "-c", "container02"],
            "kubectl exec -n default pod1 -c container02 -- nc -vz -w 2 127.0.0.1 8080",
        ),
        (
            ["pod1", "svc-b:80"],
            "kubectl exec -n default pod1 -c container01 -- nc -vz -w 2 10.101.100.102 80",
        ),
        (["pod2", "svc-b:80"], "kubectl exec -n default pod2 -- nc -vz -w 2 10.101.100.102 80"),
        (["node-a", "10.101.100.102:80"], "ssh node-a -- nc -vz -w 2 10.101.100.102 80"),
        (["client", "10.0.0.12:30080"], "nc -vz -w 2 10.0.0.12 30080"),
    ],
    ids=["-c given", "pod1 has two containers", "pod2 has one", "from a node", "from a client"],
)
def test_the_request_is_sent_from_the_traced_container(
    argv: list[str], send: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["trace", *argv, "--seed", "1", "--reproduce"]) in (0, 1)
    lines = _commands(capsys.readouterr().out)
    assert send in lines
    if "-c" in argv:
        assert lines[0] == (
            "# Confirm `kubehop trace pod1 localhost:8080 -c container02 --seed 1` on the cluster."
        )


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
