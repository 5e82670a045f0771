"""The `kubehop` command line: the app, and the headless core's commands.

Exit status: 0 delivered (or success), 1 the packet was dropped, rejected or
unreachable, 2 bad input. Every user mistake is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from model.errors import KubehopError
from model.trace import Trace, Verdict

if TYPE_CHECKING:
    from model.cluster import Cluster
    from sim.kernel.rules import NodeRules
    from sim.trace.request import Request

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"kubehop: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per job."""
    parser = _Parser(
        prog="kubehop",
        description="Watch Kubernetes networking happen: step a request hop by hop through "
        "veth, bridge, kube-proxy's iptables rules, routing and the CNI, and back.",
    )
    parser.add_argument(
        "--cluster",
        dest="clusters",
        metavar="FILE",
        action="append",
        help="cluster dump: a kubectl -o yaml/json file or a directory of them; repeat for"
        " several files (default: the built-in demo)",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    trace = sub.add_parser("trace", help="trace a request and its reply, hop by hop")
    trace.add_argument("source", help="[NAMESPACE/]POD, a node, an external client, or an IP")
    trace.add_argument(
        "destination",
        help="localhost:PORT, IP:PORT, SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT[/udp], "
        "CLUSTER_IP:PORT or NODE_IP:NODEPORT",
    )
    trace.add_argument("-c", "--container", help="the source pod's container (as kubectl -c)")
    _cluster_option(trace)
    trace.add_argument("--seed", type=int, help="seed of the random endpoint choice")
    trace.add_argument("--pick", metavar="IP:PORT", help="pin the endpoint the random rule chooses")
    trace.add_argument(
        "--node-rules",
        metavar="NODE=FILE",
        action="append",
        default=[],
        help="walk NODE through its real rules (`iptables-save` output) instead of kubehop's;"
        " repeat for several nodes",
    )
    trace.add_argument(
        "--ipset",
        metavar="NODE=FILE",
        action="append",
        default=[],
        help="NODE's `ipset save` output, for rules that use -m set",
    )
    trace.add_argument(
        "--all-endpoints",
        action="store_true",
        help="trace every branch of the load balancing, as a tree with probabilities",
    )
    trace.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output: text (default), json (kubehop schema), markdown, dot (Graphviz)",
    )
    trace.add_argument("--json", action="store_true", help="the same as --format json")
    trace.add_argument(
        "--reproduce",
        action="store_true",
        help="print the commands that confirm this trace on the live cluster",
    )

    rules = sub.add_parser("rules", help="a node's nat and filter tables, iptables-save format")
    rules.add_argument("--node", help="the node (default: the first)")
    _cluster_option(rules)
    rules.add_argument(
        "--diff",
        metavar="FILE",
        help="compare the node's `iptables-save` output with what kube-proxy should have"
        " written (exit 1 when they differ)",
    )

    sub.add_parser("schema", help="print the JSON Schema of `trace --json`")
    sub.add_parser("scenarios", help="list the article's four scenarios as commands")

    gen = sub.add_parser("gen", help="write a generated cluster (JSON) of a given size")
    gen.add_argument("--nodes", type=int, default=3)
    gen.add_argument("--pods", type=int, default=10)
    gen.add_argument("--services", type=int, default=3)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    serve = sub.add_parser("serve", help="run the app in a browser on 127.0.0.1 (textual-serve)")
    serve.add_argument("--port", type=int, default=8000)
    _cluster_option(serve)
    if _lab_available():
        from sim.lab.command import add_lab_parser

        add_lab_parser(sub)
    return parser


FORMATS = ("text", "json", "markdown", "dot")
"""What `trace --format` writes."""


def _cluster_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        dest="cluster_sub",
        metavar="FILE",
        action="append",
        help="cluster dump (file or directory; repeat for several)",
    )


def _lab_available() -> bool:
    # Only the lab's argparse wiring is imported here; building namespaces
    # happens in run_lab, so `kubehop trace` does not pay for it.
    from importlib.util import find_spec

    try:
        return find_spec("sim.lab.command") is not None
    except ImportError:
        return False


def _cluster_paths(args: argparse.Namespace) -> list[str]:
    sub: list[str] | str | None = getattr(args, "cluster_sub", None)
    top: list[str] | None = getattr(args, "clusters", None)
    # `kubehop --cluster A trace --cluster B` reads both, as repeating it does.
    mine = [sub] if isinstance(sub, str) else list(sub or [])  # the lab's own takes one
    paths = [*(top or []), *mine]
    if any(not path.strip() for path in paths):
        raise KubehopError("--cluster '': give a file or a directory")
    # The same file named twice is read once.
    once: dict[str, str] = {}
    for path in paths:
        once.setdefault(os.path.realpath(path), path)
    return list(once.values())


def _cluster_path(args: argparse.Namespace) -> str | None:
    """The one cluster path the app, `serve` and the lab take."""
    paths = _cluster_paths(args)
    if len(paths) > 1:
        raise KubehopError(
            f"{args.command or 'the app'} takes one --cluster; put the files in a directory"
            " and give that"
        )
    return paths[0] if paths else None


class _ProgressBar:
    """A progress line on stderr while a big dump loads (only on a terminal)."""

    def __init__(self) -> None:
        self.shown = False
        self.last = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if total <= 0 or not sys.stderr.isatty():
            return
        # Small files load in a blink; a bar would only flicker.
        if not self.shown and total < 4_000_000 and not stage.startswith("checking"):
            return
        if stage.startswith("checking") and total < 5_000 and not self.shown:
            return
        percent = done * 100 // total
        if percent == self.last and done < total:
            return
        self.last = percent
        self.shown = True
        width = 30
        filled = width * done // total
        unit = "objects" if stage.startswith("checking") else "bytes"
        sys.stderr.write(
            f"\r{stage[:40]:<40} [{'#' * filled}{'.' * (width - filled)}] {percent:3d}%"
            f" ({done:,}/{total:,} {unit})"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _load(args: argparse.Namespace) -> Cluster:
    from sim.cluster.load import load

    bar = _ProgressBar()
    try:
        return load(_cluster_paths(args) or None, progress=bar)
    finally:
        bar.finish()


def _trace(args: argparse.Namespace) -> int:
    from sim.readers.node_dump import load_node_rules
    from sim.trace.report import trace_json, trace_text
    from sim.trace.tracer import trace

    fmt = "json" if args.json else args.format or "text"
    if args.json and args.format not in (None, "json"):
        raise KubehopError(f"--json and --format {args.format} disagree; give one")
    if args.reproduce and (fmt in ("json", "dot") or args.all_endpoints):
        with_what = "--all-endpoints" if args.all_endpoints else f"--format {fmt}"
        raise KubehopError(
            f"--reproduce prints shell commands after the text trace; with {with_what} they"
            " would spoil the output (run it again without one of them)"
        )
    cluster = _load(args)
    real = load_node_rules(cluster, args.node_rules, args.ipset)
    if args.all_endpoints:
        return _trace_all(args, cluster, real, fmt)
    result = trace(cluster, _request(args), node_rules=real)
    if args.seed is None:
        print(
            f"kubehop: seed {result.seed} (add --seed {result.seed} to repeat this trace)",
            file=sys.stderr,
        )
    if fmt == "json":
        sys.stdout.write(trace_json(result))
    elif fmt == "markdown":
        from sim.trace.export import trace_markdown

        sys.stdout.write(trace_markdown(result))
    elif fmt == "dot":
        from sim.trace.export import trace_dot

        sys.stdout.write(trace_dot(result))
    else:
        sys.stdout.write(_rules_header(real) + trace_text(result))
        if real:
            sys.stdout.write(_compared(cluster, args, real, result))
    if args.reproduce:
        from sim.trace.export import reproduce_commands

        sys.stdout.write("\n" + reproduce_commands(result))
    return EXIT_OK if result.verdict is Verdict.DELIVERED else EXIT_NOT_DELIVERED


def _request(args: argparse.Namespace) -> Request:
    """The request `kubehop trace` was given."""
    from sim.trace.request import Request

    return Request(args.source, args.destination, args.container, args.seed, args.pick)


def _rules_header(real: Mapping[str, NodeRules]) -> str:
    lines = [
        f"rules on {node}: {rules.ruleset.source} (the node's iptables-save);"
        f" {len(rules.ruleset.warnings)} rule(s) kubehop cannot evaluate"
        for node, rules in real.items()
    ]
    for rules in real.values():
        lines += [f"  warning: {w}" for w in rules.ruleset.warnings[:10]]
    if real:
        lines.append("other nodes: kube-proxy's rules as kubehop renders them from the cluster")
    return "\n".join(lines) + ("\n" if lines else "")


def _compared(
    cluster: Cluster, args: argparse.Namespace, real: Mapping[str, NodeRules], result: Trace
) -> str:
    """How the trace through kubehop's own rules ends, when it ends differently."""
    from sim.trace.tracer import trace

    rendered = trace(
        cluster,
        replace(
            _request(args),
            seed=result.seed,
        ),
    )
    if (rendered.verdict, rendered.endpoint, rendered.reason) == (
        result.verdict,
        result.endpoint,
        result.reason,
    ):
        return "with kube-proxy's rendered rules instead: the same outcome\n"
    return (
        "with kube-proxy's rendered rules instead: "
        f"{rendered.verdict.value.upper()}: {rendered.reason}\n"
    )


def _trace_all(
    args: argparse.Namespace, cluster: Cluster, real: Mapping[str, NodeRules], fmt: str
) -> int:
    from sim.trace.fork import all_delivered, fork, fork_dict, fork_text
    from sim.trace.report import trace_text

    if args.pick is not None:
        raise KubehopError("--all-endpoints traces every endpoint; drop --pick")
    if fmt in ("markdown", "dot"):
        raise KubehopError(f"--all-endpoints prints text or json, not {fmt}")
    result = fork(cluster, _request(args), node_rules=real)
    if fmt == "json":
        sys.stdout.write(json.dumps(fork_dict(result), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(_rules_header(real) + fork_text(result))
        for number, branch in enumerate(result.branches, start=1):
            sys.stdout.write(f"\n=== branch {number} ===\n" + trace_text(branch.trace))
    return EXIT_OK if all_delivered(result) else EXIT_NOT_DELIVERED


def _rules(args: argparse.Namespace) -> int:
    from sim.proxy import node_rules

    if args.node is not None and not args.node.strip():
        raise KubehopError("--node '': give a node's name (or leave --node out for the first)")
    cluster = _load(args)
    node = args.node or cluster.nodes[0].name
    rendered = node_rules(cluster, node)
    if args.diff is None:
        sys.stdout.write(rendered.text)
        return EXIT_OK
    from sim.proxy.iptables.diff import diff_rules, diff_text
    from sim.readers.node_dump import load_node_rules

    real = load_node_rules(cluster, [f"{node}={args.diff}"])[node]
    diff = diff_rules(rendered, real)
    sys.stdout.write(diff_text(diff))
    return EXIT_OK if diff.same else EXIT_NOT_DELIVERED


def _gen(args: argparse.Namespace) -> int:
    from sim.cluster.generate import generate

    for name in ("nodes", "pods", "services"):
        if getattr(args, name) < 1:
            raise KubehopError(f"--{name} must be at least 1")
    text = generate(args.nodes, args.pods, args.services, args.seed)
    if args.output:
        write_output(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a failed write leaves the old file as it was.

    A regular file (or a new one) is written beside itself and renamed over;
    anything else (a pipe, /dev/stdout) is written in place.
    """
    name = str(path)  # KubehopError escapes what a terminal would act on
    try:
        if path.exists() and not path.is_file():
            if path.is_dir():
                raise KubehopError(f"{name}: is a directory")
            with path.open("w", encoding="utf-8") as out:
                out.write(text)
            return
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except FileNotFoundError:
        raise KubehopError(f"{name}: no such directory {path.parent}") from None
    except OSError as err:
        raise KubehopError(f"{name}: cannot write: {err.strerror or err}") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _schema() -> int:
    from sim.trace.report import trace_schema

    print(json.dumps(trace_schema(), indent=2))
    return EXIT_OK


def _scenarios() -> int:
    from sim.trace.presets import PRESETS

    for preset in PRESETS:
        print(f"{preset.key}  {preset.title:<45} {preset.command}")
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "trace":
            return _trace(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "gen":
            return _gen(args)
        if args.command == "schema":
            return _schema()
        if args.command == "scenarios":
            return _scenarios()
        if args.command == "serve":
            from tui.serve import serve

            return serve(_cluster_path(args), port=args.port)
        if args.command == "lab":
            from sim.lab.command import run_lab

            # The lab reads one path from `cluster` (its own --cluster is cluster_sub).
            args.cluster = _cluster_path(args)
            args.cluster_sub = args.cluster
            return run_lab(args)
        from tui.app import run as run_app

        return run_app(_cluster_path(args))
    except KubehopError as err:
        print(f"kubehop: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK


def main() -> None:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
