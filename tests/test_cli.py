"""The command line as a user meets it: output, exit status, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.trace import Trace, Verdict
from sim.report import trace_schema
from tui.cli import run

ROOT = Path(__file__).resolve().parent.parent


def test_trace_prints_hops_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(["trace", "pod1", "svc-b:80", "--pick", "192.168.2.2:8080", "--seed", "3"])
    out = capsys.readouterr()
    assert status == 0
    assert out.out.startswith("kubehop trace pod1 → svc-b:80   (seed 3)")
    assert "WIRE      node-a eth0" in out.out
    assert out.out.rstrip().endswith(
        "verdict: DELIVERED: pod1/container01 reached 192.168.2.2:8080 through "
        "10.101.100.102:80, and the reply came back from 10.101.100.102:80"
    )
    assert out.err == ""


def test_without_a_seed_one_is_chosen_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["trace", "pod1", "svc-b:80"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("kubehop: seed ")
    seed = int(err.split()[2])
    assert f"--seed {seed}" in err


def test_json_follows_the_schema_kept_in_the_repo(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["trace", "pod1", "svc-b:80", "--seed", "7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    parsed = Trace.model_validate(data)
    assert parsed.seed == 7 and parsed.verdict is Verdict.DELIVERED
    kept = json.loads((ROOT / "schema" / "trace.schema.json").read_text())
    assert kept == trace_schema(), "regenerate with: kubehop schema > schema/trace.schema.json"


def test_a_rejected_flow_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["trace", "pod1", "svc-empty:80", "--seed", "1"]) == 1
    assert "verdict: REJECTED: REJECT in KUBE-SERVICES" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "pod9", "svc-b:80"], "kubehop: error: source 'pod9': no such pod"),
        (["trace", "pod1", "svc-b:0"], "port 0 is out of range (1-65535)"),
        (["trace", "--cluster", "/nonexistent.yaml", "pod1", "svc-b:80"], "/nonexistent.yaml"),
        (["rules", "--node", "node-z"], "no node 'node-z'"),
        (["trace", "pod1"], "kubehop: error: the following arguments are required: destination"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = run(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_rules_prints_a_nodes_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["rules", "--node", "node-b"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("*mangle\n")
    assert "*nat\n" in out and "*filter\n" in out
    assert (
        "-A KUBE-SERVICES -d 10.101.100.102/32 -p tcp -m comment --comment "
        '"default/svc-b:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-G4RDBLL5YDRMFUB4' in out
    )
    assert out.count("COMMIT\n") == 3
