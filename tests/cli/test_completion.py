"""Shell completion as the shell drives it: `kubehop` run with argcomplete's environment.

The shell script `kubehop completion bash` prints runs `kubehop` with
`_ARGCOMPLETE=1`, the line in `COMP_LINE` and the cursor in `COMP_POINT`, and
reads the candidates from fd 8 (or the file `_ARGCOMPLETE_STDOUT_FILENAME`
names), separated by a vertical tab.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import argcomplete
import pytest

from tests import paths
from tui.cli.complete import autocomplete
from tui.cli.parser import build_parser

ROOT = paths.ROOT
KUBEADM = str(paths.REAL / "kubeadm-flannel.yaml")
KUBEHOP = Path(sys.executable).with_name("kubehop")


class _Finder(argcomplete.CompletionFinder):
    """argcomplete in this process: its debug stream is stderr, not fd 9 (pytest's)."""

    def _init_debug_stream(self) -> None:
        argcomplete.io.debug_stream = sys.stderr


def _candidates(line: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The candidates for the end of `line`, completed in this process (quick)."""
    monkeypatch.setenv("_ARGCOMPLETE", "1")
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    out = io.StringIO()
    autocomplete(build_parser(), _Finder(), output_stream=out, exit_method=lambda code: None)
    text = out.getvalue()
    # A sole candidate ends in a space, so the shell moves on to the next word.
    return [c.removesuffix(" ") for c in text.split("\v")] if text else []


def _complete(line: str, tmp_path: Path, **env: str) -> tuple[list[str], str]:
    """The candidates for the end of `line` from `kubehop` as the shell runs it, and its stderr."""
    out = tmp_path / "completions"
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli"],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    # A sole candidate ends in a space, so the shell moves on to the next word.
    return ([c.removesuffix(" ") for c in text.split("\v")] if text else []), done.stderr


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        ("kubehop tr", ["trace"]),
        ("kubehop s", ["schema", "scenarios", "serve"]),
        ("kubehop completion ", ["bash", "zsh", "fish"]),
        ("kubehop trace --for", ["--format"]),
        ("kubehop trace pod1 svc-b:80 --format j", ["json"]),
        ("kubehop trace po", ["pod1", "pod2", "pod3", "pod4"]),
        ("kubehop trace no", ["node-a", "node-b", "node-c"]),
        ("kubehop trace cl", ["client"]),
        ("kubehop trace pod1 svc", ["svc-b:80", "svc-empty:80"]),
        ("kubehop trace pod1 local", ["localhost:8080"]),
        ("kubehop trace pod1 svc-b:80 -c ", ["container01", "container02"]),
        ("kubehop rules --node node-", ["node-a", "node-b", "node-c"]),
        ("kubehop trace pod1 svc-b:80 --node-rules node-a", ["node-a="]),
        ("kubehop trace pod1 svc-b:80 --pick 192.168.2", ["192.168.2.2:8080", "192.168.2.3:8080"]),
        ("kubehop trace pod1 10.0.0.1", ["10.0.0.11:30080", "10.0.0.12:30080", "10.0.0.13:30080",
                                         "10.0.0.11:30081", "10.0.0.12:30081", "10.0.0.13:30081"]),
    ],
)  # fmt: skip
def test_commands_options_and_the_demos_names(
    line: str, wanted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _candidates(line, monkeypatch) == wanted


def test_the_shell_gets_the_candidates_from_a_kubehop_run(tmp_path: Path) -> None:
    assert _complete("kubehop trace pod1 svc-b:80 -c ", tmp_path) == (
        ["container01", "container02"],
        "",
    )


def test_names_come_from_the_cluster_on_the_line_and_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # -n and --cluster before or after the command, as the trace itself takes them.
    assert _candidates(f"kubehop --cluster {KUBEADM} trace -n kube-system core", monkeypatch) == [
        "coredns-7db6d8ff4d-4jz8q",
        "coredns-7db6d8ff4d-vb6mx",
    ]
    # Without -n, a pod outside default is written as the source is written: NAMESPACE/POD.
    assert _candidates(f"kubehop trace --cluster {KUBEADM} kube-system/core", monkeypatch) == [
        "kube-system/coredns-7db6d8ff4d-4jz8q",
        "kube-system/coredns-7db6d8ff4d-vb6mx",
    ]
    # A pod's Service names resolve through its own namespace: bare there, name.ns elsewhere.
    line = f"kubehop -n kube-system --cluster {KUBEADM} trace coredns-7db6d8ff4d-4jz8q "
    assert _candidates(line, monkeypatch) == [
        "kubernetes.default:443",
        "kube-dns:53/udp",
        "kube-dns:53",
        "kube-dns:9153",
        "frontend.default:80",
        "api.default:80",
        "orders.default:80",
        "localhost:53/udp",
        "localhost:53",
        "localhost:9153",
    ]
    line = f"kubehop --cluster {KUBEADM} trace k8s-worker-1 -n kube-system kube"
    assert _candidates(line, monkeypatch) == [
        "kubernetes.default:443",
        "kube-dns:53/udp",
        "kube-dns:53",
        "kube-dns:9153",
    ]
    assert _candidates(f"kubehop --cluster {KUBEADM} trace -n ", monkeypatch) == [
        "default",
        "kube-flannel",
        "kube-system",
    ]


def test_a_cluster_that_cannot_be_read_completes_nothing_and_says_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [\n")
    for line in (f"kubehop --cluster {bad} trace po", "kubehop --cluster /nonexistent trace po"):
        assert _candidates(line, monkeypatch) == []
    assert capsys.readouterr() == ("", "")


def test_completing_a_name_reads_the_cluster_and_traces_nothing(tmp_path: Path) -> None:
    # The shell waits on every Tab: no rules rendered, no trace, no app, no lab.
    _, imports = _complete("kubehop trace pod1 svc-b:80 -c ", tmp_path, PYTHONPROFILEIMPORTTIME="1")
    loaded = {line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if "|" in line}
    assert "sim.cluster.load" in loaded and "argcomplete" in loaded
    heavy = ("textual", "rich", "tui.app", "sim.lab", "sim.trace.tracer", "sim.kernel.walk")
    assert sorted(m for m in loaded if m.startswith(heavy)) == []
    assert not any(m.startswith("sim.proxy.iptables") for m in loaded)


def test_completing_a_command_reads_no_cluster(tmp_path: Path) -> None:
    _, imports = _complete("kubehop trace --for", tmp_path, PYTHONPROFILEIMPORTTIME="1")
    loaded = {line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if "|" in line}
    assert "argcomplete" in loaded
    assert sorted(m for m in loaded if m.startswith(("sim", "pydantic", "yaml"))) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_script_registers_kubehop(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui.cli import run

    assert run(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "kubehop" in script and "_ARGCOMPLETE" in script
    if shell != "fish":
        assert "_python_argcomplete" in script


@pytest.mark.skipif(not KUBEHOP.exists() or shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_through_the_script(tmp_path: Path) -> None:
    # What a user's shell does at `kubehop trace pod1 svc<Tab>` after sourcing the script.
    script = subprocess.run(
        [str(KUBEHOP), "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "kubehop.bash").write_text(script)
    words = ["kubehop", "trace", "pod1", "svc"]
    line = " ".join(words)
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"source {tmp_path / 'kubehop.bash'}\n"
            f'COMP_LINE="{line}"; COMP_POINT={len(line)}; COMP_WORDS=({line}); COMP_CWORD=3\n'
            '_python_argcomplete kubehop\nprintf "%s\\n" "${COMPREPLY[@]}"\n',
        ],
        env={**os.environ, "PATH": f"{KUBEHOP.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svc-b:80", "svc-empty:80"]
