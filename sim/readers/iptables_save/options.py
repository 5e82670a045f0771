"""The `[!] --option args…` words after `-m module` or `-j TARGET`, gathered by their arity."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from model.frozen import frozen
from sim.readers.iptables_save.words import LineError

_BASE_LONG = frozenset(
    {
        "--source", "--src", "--destination", "--dst", "--protocol", "--in-interface",
        "--out-interface", "--fragment", "--match", "--jump", "--goto", "--set-counters",
    }
)  # fmt: skip


@frozen
class Option:
    """One `[!] --name args…` option of a match module or target."""

    negate: bool
    name: str
    args: tuple[str, ...]


def is_module_option(tok: str) -> bool:
    """A `--name` word that belongs to a match module or target, not to the rule itself."""
    return tok.startswith("--") and tok not in _BASE_LONG


def collect(
    toks: Sequence[str],
    i: int,
    spec: dict[str, int] | None,
    owner: str,
    claimed: Callable[[str], bool] | None = None,
) -> tuple[list[Option], tuple[str, ...], str | None, int]:
    """The `[!] --opt args…` words after `-m NAME` or `-j NAME`, and the first unknown option.

    An option `spec` does not know stops the run when `claimed` says another
    module loaded earlier in the rule takes it: iptables reads a module's
    options anywhere after its `-m` (`-m tcp -m comment --comment x --dport 80`).
    """
    options: list[Option] = []
    unknown: str | None = None
    start, n = i, len(toks)
    while i < n:
        if toks[i] == "!" and i + 1 < n and is_module_option(toks[i + 1]):
            negate, name, k = True, toks[i + 1], i + 2
        elif is_module_option(toks[i]):
            negate, name, k = False, toks[i], i + 1
        else:
            break
        arity = None if spec is None else spec.get(name)
        args: list[str] = []
        if arity is None:
            if claimed is not None and claimed(name):
                break
            unknown = unknown or name
            while k < n and toks[k] != "!" and not toks[k].startswith("-"):
                args.append(toks[k])
                k += 1
        else:
            for _ in range(arity):
                if k < n and toks[k] == "!" and not negate:
                    negate, k = True, k + 1
                if k >= n:
                    raise LineError(f"{owner} {name} needs a value")
                args.append(toks[k])
                k += 1
        options.append(Option(negate, name, tuple(args)))
        i = k
    return options, tuple(toks[start:i]), unknown, i
