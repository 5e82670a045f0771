"""No output meant for a terminal carries a raw control character, whatever names the input holds.

Names and comments come from files anyone can write. Each text output is
fed a bridge name, a node dump's comments and module names, and a dump's
file name holding ESC, BEL, CR and C1 characters; stdout must hold none of
them raw (newline and tab aside), only their escapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.cluster import Cluster, CNIConfig
from sim.cluster.load import load
from tui.cli import run

HOSTILE = "\x1b]0;pwned\x07\x9b31m"
"""An OSC that retitles the window, BEL, and CSI as the one-character C1 control."""

BRIDGE = "br\x1b[2J\x07\r\x9b"
"""A bridge name no file can give any more (the loader refuses it): set behind its back."""


@pytest.fixture
def node_dump(tmp_path: Path) -> Path:
    """node-a's rules with a hostile comment on the rule svc-b's packets take, and a hostile module."""
    lines = _rendered_rules("node-a").split("\n")
    at = next(
        n for n, line in enumerate(lines) if line.startswith("-A KUBE-SERVICES -d 10.101.100.102")
    )
    lines[at:at] = [
        f"-A KUBE-SERVICES -m evil{HOSTILE} -j ACCEPT",
        f'-A KUBE-SERVICES -d 10.101.100.102/32 -p tcp -m comment --comment "{HOSTILE}"'
        " -m tcp --dport 80 -j KUBE-SVC-G4RDBLL5YDRMFUB4",
    ]
    # A file name is user text too: the trace's header and the diff name it.
    dump = tmp_path / "node-a\x1b[1m\r.rules"
    dump.write_text("\n".join(lines))
    return dump


def _rendered_rules(node: str) -> str:
    from sim.cluster.rules import node_rules

    return node_rules(load(None), node).text


@pytest.fixture
def hostile_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command loads the demo with `BRIDGE` as its CNI bridge."""
    demo = load(None)
    fields = {name: getattr(demo, name) for name in Cluster.model_fields}
    fields["cni"] = CNIConfig.model_construct(**{**dict(demo.cni), "bridge": BRIDGE})
    cluster = Cluster(**fields)
    monkeypatch.setattr("tui.cli.trace.load_cluster", lambda args: cluster)
    monkeypatch.setattr("tui.cli.rules.load_cluster", lambda args: cluster)


def _raw_controls(text: str) -> list[str]:
    return sorted({c for c in text if not c.isprintable() and c not in "\n\t"})


SHOWN_BRIDGE = "br\\x1b[2J\\x07\\r\\x9b"
SHOWN_COMMENT = "\\x1b]0;pwned\\x07\\x9b31m"
SHOWN_DUMP = "node-a\\x1b[1m\\r.rules"

TEXT_OUTPUTS = {
    "trace text": (
        ["trace", "--node-rules", "node-a=DUMP"],
        [SHOWN_BRIDGE, SHOWN_COMMENT, SHOWN_DUMP],
    ),
    "markdown": (
        ["trace", "--node-rules", "node-a=DUMP", "--format", "markdown"],
        [SHOWN_BRIDGE, SHOWN_COMMENT],
    ),
    # The graph names namespaces and nodes only: nothing hostile reaches it, nothing raw leaves.
    "dot": (["trace", "--node-rules", "node-a=DUMP", "--format", "dot"], []),
    "--all-endpoints": (
        ["trace", "--node-rules", "node-a=DUMP", "--all-endpoints"],
        [SHOWN_BRIDGE, SHOWN_COMMENT, SHOWN_DUMP],
    ),
    "--reproduce": (
        ["trace", "--node-rules", "node-a=DUMP", "--reproduce"],
        [SHOWN_BRIDGE, SHOWN_COMMENT],
    ),
    "rules": (["rules", "--node", "node-a"], []),
    "rules --diff": (["rules", "--node", "node-a", "--diff", "DUMP"], [SHOWN_COMMENT, SHOWN_DUMP]),
}
"""Every text output: its arguments (DUMP stands for the node dump) and the escapes it must show."""


@pytest.mark.usefixtures("hostile_bridge")
@pytest.mark.parametrize("name", TEXT_OUTPUTS)
def test_no_raw_control_character_reaches_stdout(
    name: str, node_dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, shown = TEXT_OUTPUTS[name]
    argv = [a.replace("DUMP", str(node_dump)) for a in args]
    if argv[0] == "trace":
        argv[1:1] = ["pod1", "svc-b:80", "--seed", "2"]
    status = run(argv)
    out = capsys.readouterr().out
    assert status in (0, 1), out
    assert _raw_controls(out) == []
    # The hostile text was there, shown as its escapes.
    for text in shown:
        assert text in out


@pytest.mark.usefixtures("hostile_bridge")
@pytest.mark.parametrize(
    "argv",
    [
        ["trace", "pod1", "svc-b:80", "--seed", "2", "--json"],
        ["trace", "pod1", "svc-b:80", "--seed", "2", "--all-endpoints", "--json"],
    ],
    ids=["--json", "--all-endpoints --json"],
)
def test_json_escapes_c1_and_still_reads_back(
    argv: list[str], node_dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run([*argv, "--node-rules", f"node-a={node_dump}"])
    out = capsys.readouterr().out
    assert _raw_controls(out) == []
    # JSON's own escapes: the names read back exactly.
    assert "\\u009b" in out
    assert BRIDGE in _strings(json.loads(out))


def _strings(value: object) -> str:
    """Every string inside `value`, joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_strings(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_strings(v) for v in value)
    return ""


def test_an_argument_argparse_does_not_know_is_shown_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["trace", "pod1", "svc-b:80", "\x1b[31mX\x07"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "kubehop: error: unrecognized arguments: \\x1b[31mX\\x07 (see 'kubehop --help')\n"
    )
