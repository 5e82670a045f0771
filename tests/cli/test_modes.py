"""`--mode`: kube-proxy's mode switched from the command line, and what `rules` shows in each."""

from __future__ import annotations

import pytest

from model.cluster import ProxyMode
from tui.cli import run
from tui.cli.parser import PROXY_MODES


def test_mode_names_are_the_models() -> None:
    # The parser spells them out so that `--help` need not import the model.
    assert set(PROXY_MODES) == {m.value for m in ProxyMode}


@pytest.mark.parametrize(
    "argv",
    [
        ["--mode", "nftables", "rules", "--node", "node-a"],
        ["rules", "--mode", "nftables", "--node", "node-a"],
    ],
    ids=["before", "after"],
)
def test_rules_in_nftables_mode_show_the_table_then_kubelets_iptables(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "# nft list table ip kube-proxy"
    assert lines[1] == "table ip kube-proxy {"
    # The Service the article's scenario 3 reaches, in the verdict map.
    assert "10.101.100.102 . tcp . 80 : goto service-QWOTMZ2Y-default/svc-b/tcp/http" in out
    # Below it kubelet's iptables chains; kube-proxy writes no KUBE-SERVICES there.
    at = lines.index("# iptables-save")
    assert lines[at + 1] == "*mangle"
    assert "KUBE-SERVICES" not in out


def test_rules_in_iptables_mode_are_iptables_save_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["rules", "--node", "node-a"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("*mangle\n") or out.startswith("*filter\n") or out.startswith("*nat\n")
    assert "-A KUBE-SERVICES -d 10.101.100.102/32 -p tcp" in out
    assert "table ip kube-proxy" not in out


def test_nft_script_is_what_kube_proxy_hands_nft(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--mode", "nftables", "rules", "--node", "node-b", "--format", "nft-script"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'add table ip kube-proxy { comment "rules for kube-proxy" ; }'
    # Base chains are added and deleted once, so a changed priority cannot fail the transaction.
    at = lines.index("add chain ip kube-proxy filter-prerouting")
    assert lines[at + 1] == "delete chain ip kube-proxy filter-prerouting"
    assert any(line.startswith("add element ip kube-proxy service-ips {") for line in lines)


def test_nft_script_in_iptables_mode_says_what_to_add(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["rules", "--format", "nft-script"]) == 2
    assert capsys.readouterr().err == (
        "kubehop: error: --format nft-script: kube-proxy runs in iptables mode here, which"
        " writes no nft script (add --mode nftables)\n"
    )


def test_trace_in_nftables_mode_dnats_in_kube_proxys_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["trace", "pod1", "svc-b:80", "--seed", "7", "--pick", "192.168.2.2:8080"]
    assert run([*argv, "--mode", "nftables"]) == 0
    out = capsys.readouterr().out
    dnat = next(line for line in out.splitlines() if " DNAT " in line and "request" in line)
    index = out.splitlines().index(dnat)
    said = out.splitlines()[index + 1]
    assert said.lstrip().startswith("DNAT in endpoint-")
    assert "destination 10.101.100.102:80 → 192.168.2.2:8080" in said


def test_rules_in_ipvs_mode_show_what_ipvsadm_ipset_and_iptables_print(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["--mode", "ipvs", "rules", "--node", "node-a"]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = [line for line in lines if line.startswith("# ")]
    assert headers[0] == "# ipvsadm-save -n"
    assert "# ipset save" in headers and "# iptables-save" in headers
    # svc-b's ClusterIP is a virtual server with its three endpoints as masqueraded real servers.
    at = lines.index("-A -t 10.101.100.102:80 -s rr")
    assert lines[at + 1 : at + 4] == [
        "-a -t 10.101.100.102:80 -r 192.168.1.3:8080 -m -w 1",
        "-a -t 10.101.100.102:80 -r 192.168.1.4:8080 -m -w 1",
        "-a -t 10.101.100.102:80 -r 192.168.2.2:8080 -m -w 1",
    ]


def test_a_mistyped_mode_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["trace", "--mode", "nftabels", "pod1", "svc-b"])
    assert exit_.value.code == 2
    assert "did you mean 'nftables'?" in capsys.readouterr().err
