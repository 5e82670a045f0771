"""The command line that brings back a trace, and the hop it was at: a deep link to hand out.

`kubehop --mode M --cni C [--cluster FILE …] trace SRC DST [-c CONTAINER] --seed S
[--pick EP] [--open --step K]`: the same cluster, kube-proxy mode, CNI, request
and seed give the same trace, hop for hop; `--open --step K` asks the app to open
it at hop K.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from os import PathLike

from sim.trace.request import Request

__all__ = ["command_argv", "command_for"]


def command_argv(
    request: Request,
    mode: str,
    cni: str,
    cluster_files: Sequence[str | PathLike[str]] = (),
    step: int | None = None,
) -> tuple[str, ...]:
    """The arguments of the command that reproduces `request`'s trace, opened at hop `step`.

    `step` is the hop's number as the app shows it, from 1; None gives the
    plain `kubehop trace` command. A request without a seed gets none, and so
    repeats only when its draws do not matter (give the trace's seed).
    """
    if step is not None and step < 1:
        raise ValueError(f"step {step}: hops are numbered from 1")
    argv = ["kubehop", "--mode", mode, "--cni", cni]
    for path in cluster_files:
        argv += ["--cluster", str(path)]
    argv += ["trace", request.source, request.destination]
    if request.container:
        argv += ["-c", request.container]
    if request.seed is not None:
        argv += ["--seed", str(request.seed)]
    if request.pick:
        argv += ["--pick", request.pick]
    if request.size is not None:
        argv += ["--size", str(request.size)]
    if step is not None:
        argv += ["--open", "--step", str(step)]
    return tuple(argv)


def command_for(
    request: Request,
    mode: str,
    cni: str,
    cluster_files: Sequence[str | PathLike[str]] = (),
    step: int | None = None,
) -> str:
    """`command_argv` as one shell line, each argument quoted where a shell would split it."""
    return shlex.join(command_argv(request, mode, cni, cluster_files, step))
