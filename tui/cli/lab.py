"""`kubehop lab up | verify | down`: what each does with the library in `sim.lab`.

Exit status: 0 success (verify: everything agrees), 1 verify found a
disagreement, 2 a user error or a machine that cannot run the lab (one line
on stderr), 130 interrupted (after removing what the run made).
"""

from __future__ import annotations

import argparse
import sys

from model.errors import KubehopError, escaped
from sim.lab.failures import LabInterrupted
from tui.cli.clusters import dataplane
from tui.cli.output import write_text
from tui.cli.status import EXIT_BAD_INPUT, EXIT_DISAGREE, EXIT_INTERRUPTED, EXIT_OK


def run_lab(args: argparse.Namespace, path: str | None) -> int:
    """Run `kubehop lab …` on the cluster at `path` (the demo when None); returns the exit status."""
    command = args.lab_command
    try:
        if command == "up":
            return _up(path, args)
        if command == "verify":
            return _verify(path, args, args.flows, args.seed)
        if command == "down":
            return _down()
        print("kubehop lab: say what to do: up, verify or down (see 'kubehop lab --help')",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    except KubehopError as err:
        print(f"kubehop lab: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, LabInterrupted):
        print("kubehop lab: interrupted; everything this run made is removed", file=sys.stderr)
        return EXIT_INTERRUPTED


def _up(path: str | None, args: argparse.Namespace) -> int:
    from sim.cluster.load import DEMO_SOURCE, load, with_dataplane
    from sim.lab.build import build, fingerprint, signals_raise
    from sim.lab.netns import check_host
    from sim.lab.state import running_labs

    check_host()
    cluster = with_dataplane(load(path), **dataplane(args))
    same = [s for s in running_labs() if s.persistent and s.fingerprint == fingerprint(cluster)]
    if same:
        raise KubehopError(
            f"a lab of this cluster is already up (run {same[-1].run_id}): "
            "`kubehop lab verify` uses it, `kubehop lab down` removes it"
        )
    with signals_raise():
        lab = build(cluster, path or DEMO_SOURCE, persistent=True)
    state = lab.state
    pods = len(state.netns) - len(cluster.nodes) - len(cluster.clients)
    write_text(
        f"lab {state.run_id} is up: {_counted(len(state.all_netns), 'network namespace')} "
        f"(kh-{state.run_id}-…) for {_counted(len(cluster.nodes), 'node')}, "
        f"{_counted(pods, 'pod')} and {_counted(len(cluster.clients), 'client')},"
        " every node's rules loaded\n"
    )
    for note in state.notes:
        write_text(f"note: {note}\n")
    write_text("next: `kubehop lab verify`, then `kubehop lab down`\n")
    return EXIT_OK


def _counted(count: int, noun: str) -> str:
    """`1 node`, `3 nodes`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _verify(path: str | None, args: argparse.Namespace, randoms: int, seed: int) -> int:
    from sim.cluster.load import DEMO_SOURCE, load, with_dataplane
    from sim.lab.build import build, fingerprint, signals_raise, teardown
    from sim.lab.cases import random_cases, spreads, standard_cases
    from sim.lab.netns import check_host
    from sim.lab.probe import Listeners
    from sim.lab.state import exclusive, running_lab
    from sim.lab.table import table
    from sim.lab.verify import Verifier, attach

    if not 0 <= randoms <= 10_000:
        raise KubehopError(f"--flows {randoms}: must be 0-10000")
    check_host()
    cluster = with_dataplane(load(path), **dataplane(args))
    with signals_raise():
        if running_lab(fingerprint(cluster)) is not None:
            lab, own = attach(cluster), False
        else:
            print("no lab of this cluster is up: building one for this run", file=sys.stderr)
            lab, own = build(cluster, path or DEMO_SOURCE, persistent=False), True
        try:
            for note in lab.state.notes:
                print(f"note: {escaped(note)}", file=sys.stderr)
            verifier = Verifier(lab)
            todo = standard_cases(cluster) + random_cases(cluster, randoms, seed)
            checks = verifier.rules()
            with exclusive(lab.state), Listeners(verifier.listen_specs()):
                for i, case in enumerate(todo, 1):
                    _progress(f"[{i}/{len(todo)}] {case.name}")
                    checks.append(verifier.check(case))
                for spread in spreads(cluster):
                    _progress(f"{spread.name} ×{spread.count}")
                    checks.append(verifier.spread(spread))
            _progress("")
        finally:
            if own:
                teardown(lab.state)
    write_text(table(checks))
    return EXIT_OK if all(c.agree for c in checks) else EXIT_DISAGREE


def _progress(text: str) -> None:
    """Overwrite the terminal's last line with which check runs now (nothing when piped)."""
    if sys.stderr.isatty():
        # The one escape sequence here is ours (clear the line); the case names are escaped.
        sys.stderr.write(f"\r\033[K{escaped(text[:100])}")
        sys.stderr.flush()


def _down() -> int:
    from sim.lab.build import teardown
    from sim.lab.netns import check_host, delete_netns, lab_netns, run_id_of
    from sim.lab.state import load_all

    check_host()
    removed: list[str] = []
    busy: set[str] = set()
    for state in load_all():
        if not state.persistent and state.owner_alive():
            # A `lab verify` (or a test) is using it right now; it removes its own.
            busy.add(state.run_id)
            continue
        teardown(state)
        removed.append(state.run_id)
    # Namespaces whose run left no state file (killed before writing it, or
    # its file was lost): found by name alone.
    orphans = [n for n in lab_netns() if run_id_of(n) not in busy]
    for name in orphans:
        delete_netns(name)
    runs = sorted(set(removed) | {run_id_of(n) or "" for n in orphans})
    if runs:
        write_text(f"removed lab run{'s' if len(runs) > 1 else ''} {', '.join(runs)}\n")
    else:
        write_text("no lab was up\n")
    if busy:
        write_text(
            f"left alone: run {', '.join(sorted(busy))} belongs to a process still running\n"
        )
    return EXIT_OK
