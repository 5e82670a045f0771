"""The `kubehop` argument parser: every subcommand, its options, defaults and help, in one place.

Global options (`--cluster`, `-n`) are accepted before or after any
subcommand, as kubectl's are: `GLOBAL_OPTIONS` lists them once, every parser in
the tree gets them, and `merged` folds what was given at each level into one
value. An option a later issue adds is one more entry.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from model.errors import escaped
from tui.cli import complete
from tui.cli.status import EXIT_BAD_INPUT, EXIT_OK

FORMATS = ("text", "json", "markdown", "dot")
"""What `trace --format` writes."""

COMPARE_FORMATS = ("text", "json", "markdown")
"""What `compare --format` writes."""

RULES_FORMATS = ("text", "nft-script")
"""What `rules --format` writes."""

SHELLS = ("bash", "zsh", "fish")
"""The shells `kubehop completion` writes a script for (argcomplete's)."""

CNI_NAMES = (
    "host-gw",
    "flannel-vxlan",
    "flannel-host-gw",
    "calico-bgp",
    "calico-ipip",
    "calico-vxlan",
)
"""The CNIs `--cni` switches to (model.cluster.CNIPlugin's values; a test keeps them in step)."""

PROXY_MODES = ("iptables", "nftables", "ipvs")
"""The kube-proxy modes `--mode` names (model.cluster.ProxyMode's values; a test keeps them in
step); the cluster loader says which are not simulated yet."""

KUBERNETES = "1.31"
"""The Kubernetes release whose kube-proxy and kubelet kubehop models (see sim/proxy/iptables)."""


@dataclass(frozen=True)
class GlobalOption:
    """An option every subcommand takes, before or after its name."""

    flags: tuple[str, ...]
    """`("-n", "--namespace")`."""
    dest: str
    """The attribute `merged` arguments carry it in."""
    help: str
    """Its help, with its default."""
    metavar: str
    """The value's name in the help."""
    commands: frozenset[str]
    """The subcommands it means something to; the others take it silently, as kubectl's
    non-namespaced commands take -n, and leave it out of their help."""
    repeat: bool = False
    """Given several times (before and after the subcommand too), the values add up."""
    completer: Callable[..., Any] | None = field(default=None, compare=False)
    """What the shell completes its value with (None: file names)."""
    helps: Mapping[str, str] = field(default_factory=dict)
    """Its help where a subcommand takes it otherwise (one file, not several)."""
    choices: tuple[str, ...] | None = None
    """The values it takes (None: any)."""


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption(
        ("--cluster",),
        "clusters",
        "cluster dump: a kubectl -o yaml/json file or a directory of them; repeat for"
        " several files (default: the built-in demo)",
        "FILE",
        frozenset({"trace", "compare", "rules", "serve", "lab"}),
        repeat=True,
        helps={
            command: "cluster dump: a kubectl -o yaml/json file, or a directory of them"
            " (default: the built-in demo)"
            for command in ("serve", "lab")
        },
    ),
    GlobalOption(
        ("-n", "--namespace"),
        "namespace",
        "as kubectl -n: the namespace of a pod named without one; from a node or a"
        " client, Service names are looked up there too (default: default)",
        "NAMESPACE",
        frozenset({"trace", "compare"}),
        completer=complete.namespaces,
    ),
    GlobalOption(
        ("--cni",),
        "cni",
        "simulate this CNI instead of the cluster file's (default: the file's CNIConfig, else"
        " host-gw)",
        "NAME",
        frozenset({"", "trace", "compare", "rules", "routes", "serve", "lab"}),
        choices=CNI_NAMES,
    ),
    GlobalOption(
        ("--mode",),
        "mode",
        "simulate kube-proxy in this mode instead of the cluster file's (default: the file's"
        " KubeProxyConfiguration mode, else iptables)",
        "MODE",
        frozenset({"", "trace", "rules", "serve", "lab"}),
        choices=PROXY_MODES,
    ),
)
"""The options kubectl users expect anywhere on the line."""

_LEVEL = "@"
"""Separates a global option's dest from the depth of the parser that took it."""


class _Parser(argparse.ArgumentParser):
    """A parser whose mistakes are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes some values with repr but lists unrecognized arguments raw.
        self.exit(
            EXIT_BAD_INPUT, f"kubehop: error: {escaped(message)} (see '{self.prog} --help')\n"
        )

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # The stdlib lists every choice; a close one is what a typo needs.
        choices = action.choices
        if choices is None or value in choices:
            return
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        if isinstance(action, argparse._SubParsersAction):
            hint = f"did you mean {close[0]!r}?" if close else f"choose from {_listed(choices)}"
            raise argparse.ArgumentError(None, f"unknown command {value!r}: {hint}")
        if close:
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}: did you mean {close[0]!r}?"
            )
        super()._check_value(action, value)


class _TopParser(_Parser):
    """The `kubehop` parser: what it returns has each global option merged."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        return merged(parsed), rest


def _listed(choices: Any) -> str:
    return ", ".join(repr(c) for c in choices)


class _Version(argparse.Action):
    """`--version`: the package's version, read only when asked (importlib.metadata is slow)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from tui.cli.output import write_text

        write_text(version_line() + "\n")
        parser.exit(EXIT_OK)


def version_line() -> str:
    """`kubehop 0.1.0 (models Kubernetes 1.31)`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("kubehop")
    except PackageNotFoundError:  # run from a checkout that was never pip-installed
        mine = "(not installed: version unknown)"
    return f"kubehop {mine} (models Kubernetes {KUBERNETES})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per job and the global options on each."""
    parser = _TopParser(
        prog="kubehop",
        description="Watch Kubernetes networking happen: step a request hop by hop through "
        "veth, bridge, kube-proxy's iptables rules, routing and the CNI, and back. Without a "
        "command, opens the app (it needs a terminal).",
    )
    parser.add_argument(
        "--version",
        action=_Version,
        help=f"print kubehop's version and the Kubernetes release it models ({KUBERNETES})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_trace(sub)
    _add_compare(sub)
    _add_rules(sub)
    _add_routes(sub)
    sub.add_parser("schema", help="print the JSON Schema of `trace --json`")
    sub.add_parser("scenarios", help="list the article's four scenarios as commands")
    _add_gen(sub)
    _add_serve(sub)
    # Always offered: `lab` itself says why when this machine cannot run it.
    _add_lab(sub)
    _add_completion(sub)
    _add_deep_link(parser)
    _add_globals(parser, 0)
    return parser


def _add_deep_link(parser: argparse.ArgumentParser) -> None:
    """The app opened at a scenario's hop: `kubehop --scenario 3 --step 7` (a deep link)."""
    group = parser.add_argument_group("opening the app at a scenario (without a command)")
    group.add_argument(
        "--scenario",
        choices=("1", "2", "3", "4"),
        metavar="N",
        help="open the app at the article's scenario N (1-4, see 'kubehop scenarios')",
    )
    group.add_argument(
        "--step",
        dest="scenario_step",
        type=_hop_number,
        metavar="K",
        help="with --scenario, open at hop K (from 1, as the app numbers them)",
    )


def _hop_number(text: str) -> int:
    """A hop's number as the app shows it: 1 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hop number (1, 2, …)") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number}: hops are numbered from 1")
    return number


def _add_globals(parser: argparse.ArgumentParser, level: int, command: str | None = None) -> None:
    """Give `parser` and every parser below it the global options, each level its own dest."""
    where = "also after the command" if level == 0 else "also before the command"
    group = parser.add_argument_group(f"global options ({where})")
    for option in GLOBAL_OPTIONS:
        shown = command is None or command in option.commands
        action = group.add_argument(
            *option.flags,
            dest=option.dest if level == 0 else f"{option.dest}{_LEVEL}{level}",
            metavar=option.metavar,
            action="append" if option.repeat else "store",
            choices=option.choices,
            # Absent unless given, so a subcommand's copy never hides the top's value.
            default=None if level == 0 else argparse.SUPPRESS,
            help=option.helps.get(command or "", option.help) if shown else argparse.SUPPRESS,
        )
        if option.completer is not None:
            complete.attach(action, option.completer)
    if not group._group_actions or all(a.help == argparse.SUPPRESS for a in group._group_actions):
        parser._action_groups.remove(group)  # no empty heading in the help
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child, name in dict(
                zip(action.choices.values(), action.choices, strict=True)
            ).items():
                _add_globals(child, level + 1, command or name)


def merged(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with each global option's values from every level folded into its dest.

    Repeatable options add up, top level first (`--cluster A trace --cluster B`
    reads both); the others take the value given last, as a repeated option
    does. Safe to call twice.
    """
    for option in GLOBAL_OPTIONS:
        prefix = f"{option.dest}{_LEVEL}"
        levels = sorted(
            (int(name.removeprefix(prefix)), name) for name in vars(args) if name.startswith(prefix)
        )
        values = [getattr(args, option.dest, None), *(getattr(args, name) for _, name in levels)]
        for _, name in levels:
            delattr(args, name)
        given = [value for value in values if value is not None]
        if option.repeat:
            setattr(args, option.dest, [v for value in given for v in value] or None)
        else:
            setattr(args, option.dest, given[-1] if given else None)
    return args


def _add_request(parser: Any) -> None:
    """The request `trace` and `compare` take: source, destination, container, seed, pin,
    size."""
    source = parser.add_argument(
        "source", help="[NAMESPACE/]POD, a node, an external client, or an IP"
    )
    complete.attach(source, complete.sources)
    destination = parser.add_argument(
        "destination",
        help="localhost:PORT, IP:PORT, SERVICE[.NAMESPACE[.svc.cluster.local]]:PORT[/udp], "
        "CLUSTER_IP:PORT or NODE_IP:NODEPORT",
    )
    complete.attach(destination, complete.destinations)
    container = parser.add_argument(
        "-c",
        "--container",
        help="the source pod's container, as kubectl -c (default: its first)",
    )
    complete.attach(container, complete.containers)
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the random endpoint choice (default: a new one, printed on stderr)",
    )
    pick = parser.add_argument(
        "--pick",
        metavar="IP:PORT",
        help="pin the endpoint the random rule chooses (default: the seed decides)",
    )
    complete.attach(pick, complete.endpoints)
    parser.add_argument(
        "--size",
        type=int,
        metavar="BYTES",
        help="payload bytes of the traced packet: a UDP datagram's payload, or for TCP the data"
        " written once connected (the trace is then the first data segment after the"
        " handshake); shows MTU, DF, fragments and ICMP fragmentation needed (default: a SYN,"
        " or an empty datagram)",
    )


def _add_trace(sub: Any) -> None:
    trace = sub.add_parser(
        "trace",
        help="trace a request and its reply, hop by hop",
        description="Trace a request and its reply hop by hop. Exit status: 0 delivered,"
        " 1 dropped, rejected, refused or unreachable, 2 bad input.",
    )
    _add_request(trace)
    node_rules = trace.add_argument(
        "--node-rules",
        metavar="NODE=FILE",
        action="append",
        default=[],
        help="walk NODE through its real rules (`iptables-save` output) instead of kubehop's;"
        " repeat for several nodes",
    )
    complete.attach(node_rules, complete.node_files)
    ipset = trace.add_argument(
        "--ipset",
        metavar="NODE=FILE",
        action="append",
        default=[],
        help="NODE's `ipset save` output, for rules that use -m set",
    )
    complete.attach(ipset, complete.node_files)
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
    trace.add_argument(
        "--questions",
        action="store_true",
        help="after the trace, print challenge mode's questions with their answers (an answer"
        " key to hand out with the trace)",
    )
    _add_open(trace)


def _add_open(trace: Any) -> None:
    """`trace … --open [--step K]`: the trace in the app instead of printed (a deep link)."""
    trace.add_argument(
        "--open",
        action="store_true",
        help="open the app at this trace instead of printing it (the app's y key prints the"
        " command that reopens the hop on show)",
    )
    trace.add_argument(
        "--step",
        type=_hop_number,
        metavar="K",
        help="with --open, open at hop K (from 1, as the app and the text trace number them)",
    )


def _add_compare(sub: Any) -> None:
    compare = sub.add_parser(
        "compare",
        help="trace one request under several kube-proxy modes, side by side",
        description="Trace one request under each kube-proxy mode named and line the hops"
        " up, saying where the modes differ. The endpoint the first mode draws is pinned in"
        " the others (unless --pick pins one), so the paths compare. Exit status: 0 when"
        " every mode delivers, 1 otherwise, 2 bad input.",
    )
    _add_request(compare)
    compare.add_argument(
        "--modes",
        metavar="MODE,MODE[,…]",
        default=",".join(PROXY_MODES),
        help=f"the modes, comma-separated (default: {','.join(PROXY_MODES)})",
    )
    compare.add_argument(
        "--format",
        choices=COMPARE_FORMATS,
        default="text",
        help="output: text, json (each mode's trace and the rows), markdown (default: text)",
    )


def _add_rules(sub: Any) -> None:
    rules = sub.add_parser(
        "rules",
        help="a node's rules as the node shows them: iptables-save in iptables mode; in"
        " nftables mode `nft list table ip kube-proxy`, then iptables-save",
    )
    node = rules.add_argument("--node", help="the node (default: the first)")
    complete.attach(node, complete.nodes)
    rules.add_argument(
        "--format",
        choices=RULES_FORMATS,
        default="text",
        help="text: what the node's commands print; nft-script: in nftables mode, the"
        " transaction kube-proxy hands `nft -f` (default: text)",
    )
    rules.add_argument(
        "--diff",
        metavar="FILE",
        help="compare the node's own rules (`iptables-save`, or in nftables mode `nft list"
        " ruleset`) with what kube-proxy should have written (exit 1 when they differ)",
    )


def _add_routes(sub: Any) -> None:
    routes = sub.add_parser(
        "routes",
        help="a node's routes, neighbour entries and FDB, as ip route, ip neigh, bridge fdb print",
    )
    node = routes.add_argument("--node", help="the node (default: the first)")
    complete.attach(node, complete.nodes)
    routes.add_argument(
        "--diff",
        metavar="FILE",
        help="compare with what `ip route; ip neigh; bridge fdb` printed on the node (exit 1"
        " when they differ)",
    )


def _add_gen(sub: Any) -> None:
    gen = sub.add_parser(
        "gen",
        help="write a generated cluster (JSON) of a given size",
        description="Write a cluster of the given size as a kubectl -o json List: nodes,"
        " pods spread over them, Services selecting them, with their EndpointSlices. The"
        " same options and seed write the same file.",
    )
    gen.add_argument("--nodes", type=int, default=3, metavar="N", help="N nodes (default: 3)")
    gen.add_argument(
        "--pods", type=int, default=10, metavar="N", help="N pods in all (default: 10)"
    )
    gen.add_argument("--services", type=int, default=3, metavar="N", help="N Services (default: 3)")
    gen.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the names, addresses and placement (default: 1)",
    )
    gen.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of stdout (default: stdout)"
    )


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the app in a browser on 127.0.0.1 (textual-serve)",
        description="Run the app in a browser, one app process per tab. It listens on"
        " 127.0.0.1 only and prints the address to open, http://127.0.0.1:PORT/?token=…: the"
        " token is new each run, and without it, from another Host, or from another page's"
        " Origin every request is refused (403), so other web pages cannot read the cluster"
        " or press keys. It reads one --cluster (a file or a directory).",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="the port on 127.0.0.1 to listen on (default: 8000)"
    )
    serve.add_argument(
        "--max-sessions",
        type=int,
        default=4,
        metavar="N",
        help="at most N app sessions (browser tabs) at once, each an app process;"
        " the next is refused until one closes (default: 4)",
    )


def _add_lab(sub: Any) -> None:
    lab = sub.add_parser(
        "lab",
        help="check kubehop against the real kernel in network namespaces (root, Linux)",
        description="Build the cluster's network in Linux network namespaces (kh-<id>-…), "
        "load every node's kube-proxy rules with iptables-restore, send real traffic and "
        "compare with kubehop's traces. Nothing is added to the root namespace. It reads one"
        " --cluster.",
    )
    steps = lab.add_subparsers(dest="lab_command", metavar="{up,verify,down}", parser_class=_Parser)
    steps.add_parser("up", help="build the cluster's network in namespaces and leave it up")
    verify = steps.add_parser(
        "verify", help="send real traffic and compare with kubehop (builds a lab if none is up)"
    )
    verify.add_argument(
        "--flows",
        type=int,
        default=0,
        metavar="N",
        help="N random flows too, besides the scenarios (default: 0)",
    )
    verify.add_argument("--seed", type=int, default=1, help="seed of the random flows (default: 1)")
    steps.add_parser("down", help="remove every lab namespace (also leftovers of crashed runs)")


def _add_completion(sub: Any) -> None:
    completion = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh, fish)",
        description="Print a script that makes the shell complete kubehop's commands,"
        " options, and the pods, Services, nodes and clients of the --cluster on the line"
        " (the demo's without one), as kubectl's completion does. Load it from your"
        " shell's start-up file: bash (~/.bashrc): source <(kubehop completion bash);"
        " zsh (~/.zshrc, after compinit): source <(kubehop completion zsh);"
        " fish (~/.config/fish/config.fish): kubehop completion fish | source.",
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell: bash, zsh or fish")
