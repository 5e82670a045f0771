"""The command line as a user meets it: output, exit status, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.trace import Trace, Verdict
from sim.cluster.generate import generate
from sim.trace.report import trace_schema
from tests import paths
from tui.cli import run

ROOT = paths.ROOT
DEMO = str(ROOT / "model" / "demo_cluster.yaml")


def test_trace_prints_hops_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(["trace", "pod1", "svc-b:80", "--pick", "192.168.2.2:8080", "--seed", "3"])
    out = capsys.readouterr()
    assert status == 0
    assert out.out.startswith("kubehop trace pod1 → svc-b:80   (seed 3)")
    assert "WIRE    node-a eth0" in out.out
    assert (
        "verdict: DELIVERED: pod1/container01 reached 192.168.2.2:8080 through "
        "10.101.100.102:80, and the reply came back from 10.101.100.102:80"
    ) in out.out.splitlines()
    # The summary comes last.
    assert out.out.rstrip().splitlines()[-1] == "  outcome: DELIVERED (192.168.2.2:8080)"
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
    # `effect` and `summary` are derived from the hops, so the model reads the JSON without them.
    assert [hop.pop("effect") for hop in data["hops"]][4] == "dnat"
    assert data.pop("summary")["nat"][0]["effect"] == "dnat"
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
        (
            ["trace", "pod1", "svc-b\x1b[2J:80"],
            "'svc-b\\x1b[2J' does not resolve",
        ),
        (
            ["trace", "pod1", "svc-b:80", "--json", "--reproduce"],
            "with --format json they would spoil the output",
        ),
        (
            ["--cluster", "/nonexistent.yaml", "trace", "pod1", "svc-b:80", "--cluster", DEMO],
            "/nonexistent.yaml: no such file",
        ),
        (["trace", "pod1", "svc-b:80", "--cluster", ""], "--cluster '': give a file"),
        (["trace", "pod1", "svc-b:80", "--cluster", "/dev/zero"], "/dev/zero: is a device"),
        (["serve", "--port", "99999"], "--port 99999 is out of range (1-65535)"),
        (["serve", "--cluster", "/nonexistent.yaml"], "/nonexistent.yaml: no such file"),
        (["gen", "-o", "/nonexistent/x.json"], "/nonexistent/x.json: no such directory"),
        (["rules", "--node", ""], "--node '': give a node's name"),
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
    assert err.isprintable() or err[:-1].isprintable()


def test_a_failed_gen_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cluster.json"
    out.write_text("the user's file\n")

    def disk_full(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tui.cli.output.os.replace", disk_full)
    assert run(["gen", "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"kubehop: error: {out}: cannot write: No space left on device\n"
    )
    assert out.read_text() == "the user's file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.json"]


def test_gen_writes_the_generated_cluster(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    argv = ["gen", "--nodes", "2", "--pods", "4", "--services", "1", "--seed", "5", "-o", str(out)]
    assert run(argv) == 0
    assert out.read_text() == generate(nodes=2, pods=4, services=1, seed=5)


def test_gen_replaces_a_file_keeping_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    out.write_text("old")
    out.chmod(0o640)
    assert run(["gen", "--nodes", "2", "--pods", "4", "--services", "1", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["kind"] == "List"
    assert out.stat().st_mode & 0o777 == 0o640


def test_a_cluster_named_by_both_cluster_options_is_read_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--cluster", DEMO, "trace", "pod1", "svc-b:80", "--seed", "1", "--cluster", DEMO]
    assert run(argv) == 0
    assert "verdict: DELIVERED" in capsys.readouterr().out


def test_a_number_too_long_for_python_is_one_line_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "big.yaml"
    text = (ROOT / "model" / "demo_cluster.yaml").read_text()
    bad.write_text(text.replace("mtu: 1500", "mtu: " + "1" * 5000, 1))
    line = text[: text.index("mtu: 1500")].count("\n") + 1
    assert run(["trace", "pod1", "svc-b:80", "--cluster", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"kubehop: error: {bad}:{line}: a number of 5000 digits"
        " (no Kubernetes field holds one that long)\n"
    )


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


def test_scenarios_say_what_happens_the_goal_and_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["scenarios"]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    assert len(blocks) == 4
    assert blocks[2].splitlines() == [
        "Scenario 3 — a pod calls a Service whose endpoint is on another node",
        "  goal: Follow the DNAT on the sender's node, the route across to the endpoint's node,"
        " and conntrack undoing the DNAT when the reply comes back.",
        "  $ kubehop trace pod1 svc-b:80 --pick 192.168.2.2:8080",
    ]
