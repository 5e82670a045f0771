"""What a kubectl user expects of a command line: --version, -n, global options anywhere,
"did you mean", every option's help and default, and no app without a terminal.
"""

from __future__ import annotations

import argparse
import os
import pty
import subprocess
import sys
from importlib.metadata import version

import pytest

import sim.proxy.iptables
from tests import paths
from tui.cli import build_parser, run
from tui.cli.parser import GLOBAL_OPTIONS, KUBERNETES

ROOT = paths.ROOT
DEMO = str(ROOT / "model" / "demo_cluster.yaml")
KUBEADM = str(paths.REAL / "kubeadm-flannel.yaml")
COREDNS = "coredns-7db6d8ff4d-4jz8q"


def _status(argv: list[str]) -> int:
    try:
        return run(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_version_names_the_package_and_the_kubernetes_it_models(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _status(["--version"]) == 0
    assert capsys.readouterr().out == f"kubehop {version('kubehop')} (models Kubernetes 1.31)\n"
    # The release the rules follow is written once in the core; the line must not drift from it.
    assert f"Kubernetes {KUBERNETES}" in (sim.proxy.iptables.__doc__ or "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trce", "pod1", "svc-b:80"], "unknown command 'trce': did you mean 'trace'?"),
        (["--cluster", DEMO, "rulse"], "unknown command 'rulse': did you mean 'rules'?"),
        (["lab", "verfy"], "unknown command 'verfy': did you mean 'verify'?"),
        (["completion", "bsh"], "invalid choice: 'bsh': did you mean 'bash'?"),
        (["trace", "pod1", "svc-b:80", "--format", "jsno"], "did you mean 'json'?"),
        (["xyzzy"], "unknown command 'xyzzy': choose from 'trace', 'compare', 'rules', "),
        (["trace", "pod11", "svc-b:80"], "source 'pod11': no such pod, node or external client"
                                         " (did you mean pod1?)"),
        (["trace", "nod-a", "svc-b:80"], "(did you mean node-a?)"),
        (["trace", "pod1", "svc-c:80"], "'svc-c' does not resolve: no Service answers to"
                                        " svc-c.default.svc.cluster.local, svc-c.svc.cluster.local,"
                                        " svc-c.cluster.local, svc-c (NXDOMAIN); did you mean svc-b?"),
        (["trace", "pod1", "myap-svc.default:80"], "; did you mean myapp-svc.default?"),
        (["trace", "pod1", "svc-b.defualt.svc.cluster.local:80"],
         "; did you mean svc-b.default.svc.cluster.local?"),
        (["--cluster", KUBEADM, "trace", COREDNS, "kube-dns:53/udp"],
         f"(did you mean kube-system/{COREDNS}?)"),
        (["--cluster", KUBEADM, "-n", "kube-system", "trace", COREDNS[:-1], "kube-dns:53/udp"],
         f"source 'kube-system/{COREDNS[:-1]}': no such pod, node or external client"
         f" (did you mean kube-system/{COREDNS}?)"),
        (["trace", "xyz", "svc-b:80"], "(try: pod1, pod2, pod3, pod4, "),
        # Nothing close: node-a is 0.6 like `nope`, too far to offer.
        (["trace", "nope", "svc-b:80"], "(try: pod1, pod2, pod3, pod4, "),
        (["-n", "", "trace", "pod1", "svc-b:80"], "-n '': give a namespace"),
    ],
)  # fmt: skip
def test_a_typo_gets_the_nearest_name_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _status(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kubehop: error: ")
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--cluster", KUBEADM, "-n", "kube-system", "trace", COREDNS, "kube-dns:53/udp"],
        ["trace", COREDNS, "kube-dns:53/udp", "--cluster", KUBEADM, "-n", "kube-system"],
        ["-n", "default", "--cluster", KUBEADM, "trace", "-n", "kube-system", COREDNS, "kube-dns:53/udp"],
        ["trace", f"kube-system/{COREDNS}", "kube-dns:53/udp", "--cluster", KUBEADM],
    ],
    ids=["before", "after", "the last -n wins", "qualified"],
)  # fmt: skip
def test_n_is_the_namespace_of_an_unqualified_pod(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*argv, "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"kubehop trace kube-system/{COREDNS} → kube-dns:53/udp   (seed 1)")
    # The pod's own resolver searched kube-system: kube-dns answered.
    assert "kube-dns.kube-system.svc.cluster.local" in out


def test_n_leaves_a_nodes_name_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--cluster", KUBEADM, "-n", "kube-system", "trace", "k8s-worker-1",
                "10.96.0.10:53/udp", "--seed", "1"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("kubehop trace k8s-worker-1 → 10.96.0.10:53/udp")


def test_from_a_node_a_service_name_is_looked_up_in_n_and_said_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--cluster", KUBEADM, "trace", "k8s-worker-1", "kube-dns:53/udp", "--seed", "1"]
    assert run([*argv, "-n", "kube-system"]) == 0
    out = capsys.readouterr()
    assert out.err == (
        "kubehop: k8s-worker-1 is not a pod and asks no cluster DNS: kube-dns (namespace"
        " kube-system) is the ClusterIP of Service kube-system/kube-dns, so the trace goes to"
        " 10.96.0.10:53/udp\n"
    )
    assert out.out.startswith("kubehop trace k8s-worker-1 → 10.96.0.10:53/udp   (seed 1)")
    # Without -n it is looked up in default, where there is no kube-dns.
    assert _status(argv) == 2
    assert "'kube-dns' does not resolve" in capsys.readouterr().err


def _every_parser() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        found.append((parser.prog, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(dict.fromkeys(action.choices.values()))
    return found


def test_every_parser_takes_the_global_options_after_its_command() -> None:
    for prog, parser in _every_parser():
        flags = {flag for action in parser._actions for flag in action.option_strings}
        for option in GLOBAL_OPTIONS:
            assert set(option.flags) <= flags, f"{prog} lacks {option.flags}"


@pytest.mark.parametrize(
    ("argv", "clusters", "namespace"),
    [
        (["--cluster", "a", "trace", "p", "d"], ["a"], None),
        (["trace", "p", "d", "--cluster", "a"], ["a"], None),
        (["--cluster", "a", "trace", "p", "d", "--cluster", "b"], ["a", "b"], None),
        (["-n", "x", "lab", "--cluster", "a", "verify", "-n", "y", "--cluster", "b"], ["a", "b"], "y"),
        (["lab", "-n", "x", "up"], None, "x"),
        (["gen", "--namespace", "x"], None, "x"),
        (["trace", "p", "d"], None, None),
    ],
)  # fmt: skip
def test_global_options_merge_across_levels(
    argv: list[str], clusters: list[str] | None, namespace: str | None
) -> None:
    args = build_parser().parse_args(argv)
    assert (args.clusters, args.namespace) == (clusters, namespace)
    assert not [name for name in vars(args) if "@" in name]


def test_every_option_says_what_it_does_and_its_default() -> None:
    for prog, parser in _every_parser():
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{prog} {action.option_strings} has no help"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "(default: " in action.help, f"{prog} {action.option_strings}"


def test_gen_help_describes_each_option_and_its_default() -> None:
    gen = dict(_every_parser())["kubehop gen"].format_help()
    for line in (
        "--nodes N             N nodes (default: 3)",
        "--pods N              N pods in all (default: 10)",
        "--services N          N Services (default: 3)",
        "--seed SEED           seed of the names, addresses and placement (default:",
        "write here instead of stdout (default: stdout)",
    ):
        assert line in gen
    # gen reads no cluster: the global options it takes silently are not offered.
    assert "--cluster" not in gen and "--namespace" not in gen


def _kubehop(stdin: int | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_app_without_a_terminal_says_what_to_run_instead() -> None:
    done = _kubehop(subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "kubehop: error: the app needs a terminal, and neither stdin nor stdout is one: for"
        " text run 'kubehop trace SOURCE DESTINATION' (see 'kubehop scenarios'), or 'kubehop"
        " serve' for the app in a browser\n"
    )


def test_the_app_with_its_output_in_a_file_says_so() -> None:
    # `kubehop > out.txt` from a terminal: stdin is one, stdout is not.
    leader, follower = pty.openpty()
    try:
        done = _kubehop(follower)
    finally:
        os.close(leader)
        os.close(follower)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        "kubehop: error: the app needs a terminal, and stdout is not one:"
    )
