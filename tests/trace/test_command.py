"""The command line that reopens a trace at a hop."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from sim.trace.command import command_argv, command_for
from sim.trace.presets import preset_for
from sim.trace.request import Request


def test_a_scenario_at_a_hop_is_one_line_a_teacher_can_hand_out() -> None:
    preset = preset_for("3")
    assert preset is not None
    request = Request(
        preset.request.source, preset.request.destination, seed=7, pick=preset.request.pick
    )
    assert command_for(request, "iptables", "host-gw", step=7) == (
        "kubehop --mode iptables --cni host-gw trace pod1 svc-b:80 --seed 7"
        " --pick 192.168.2.2:8080 --open --step 7"
    )


def test_cluster_files_and_awkward_names_are_quoted_for_the_shell() -> None:
    request = Request("shop/pod one", "svc-b:80", container="c;reboot", seed=1)
    line = command_for(request, "nftables", "flannel-vxlan", [Path("/tmp/my cluster.yaml")])
    assert line == (
        "kubehop --mode nftables --cni flannel-vxlan --cluster '/tmp/my cluster.yaml' trace"
        " 'shop/pod one' svc-b:80 -c 'c;reboot' --seed 1"
    )
    assert tuple(shlex.split(line)) == command_argv(
        request, "nftables", "flannel-vxlan", ["/tmp/my cluster.yaml"]
    )


def test_hops_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="step 0: hops are numbered from 1"):
        command_argv(Request("pod1", "svc-b:80", seed=1), "iptables", "host-gw", step=0)


def test_the_command_runs_and_gives_the_same_trace(capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import run

    request = Request("pod1", "svc-b:80", seed=7, pick="192.168.2.2:8080")
    assert run(list(command_argv(request, "ipvs", "flannel-vxlan")[1:])) == 0
    out = capsys.readouterr().out
    assert out.startswith("kubehop trace pod1 → svc-b:80   (seed 7)")
    assert "ENCAP" in out and out.rstrip().endswith("outcome: DELIVERED (192.168.2.2:8080)")


def test_a_sized_request_keeps_its_size(capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import run

    request = Request("client", "10.0.0.11:30080", seed=1, size=3000)
    argv = command_argv(request, "iptables", "flannel-vxlan")
    assert argv[-2:] == ("--size", "3000")
    assert run(list(argv[1:])) == 0
    assert "it carries 1398 of the 3000 bytes" in capsys.readouterr().out
