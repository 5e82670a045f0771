"""Where a lab is written down: one JSON file per run under /run/kubehop/.

`lab up` writes the file before it creates anything, so `lab down` (or the
next run) knows every name it may have made even if the run was killed.
`KUBEHOP_LAB_DIR` moves the directory (the tests use their own).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sim.lab.failures import LabError

DEFAULT_DIR = "/run/kubehop"
"""Lab state lives here unless KUBEHOP_LAB_DIR says otherwise."""


def state_dir() -> Path:
    """The directory of lab state files."""
    return Path(os.environ.get("KUBEHOP_LAB_DIR") or DEFAULT_DIR)


@dataclass
class LabState:
    """One lab run: its id, its owner, and the namespaces it makes."""

    run_id: str
    """Six hex digits; every netns of the run is named `kh-<run_id>-…`."""
    pid: int
    """The process that built it."""
    persistent: bool
    """Left up on purpose (`lab up`); a transient lab dies with its process."""
    cluster_source: str
    """The cluster file it was built from (or the demo's name)."""
    fingerprint: str
    """A hash of the cluster's network and rules, to refuse verifying another cluster."""
    netns: dict[str, str] = field(default_factory=dict)
    """Topology netns name (`node-a`, `pod/default/pod1`) → lab netns name."""
    net: str = ""
    """The netns holding the node-network bridge."""
    notes: list[str] = field(default_factory=list)
    """What the lab could not do as the simulation assumes (said once, at `lab up`)."""
    started: float = field(default_factory=time.time)
    """When the run began (Unix time)."""
    ready: bool = False
    """Every namespace is built and its rules loaded."""

    @property
    def path(self) -> Path:
        """The state file."""
        return state_dir() / f"lab-{self.run_id}.json"

    @property
    def all_netns(self) -> list[str]:
        """Every netns name of the run, the node network last."""
        return [*self.netns.values(), *([self.net] if self.net else [])]

    def save(self) -> None:
        """Write the state file atomically."""
        try:
            state_dir().mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=1))
            tmp.replace(self.path)
        except OSError as err:
            raise LabError(f"cannot write the lab state file {self.path}: {err}") from err

    def remove(self) -> None:
        """Delete the state file (and the lock file, if any)."""
        self.path.unlink(missing_ok=True)
        (state_dir() / f"lab-{self.run_id}.lock").unlink(missing_ok=True)

    def owner_alive(self) -> bool:
        """The process that built the lab is still running."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def load_all() -> list[LabState]:
    """Every lab state file, oldest first (unreadable files are skipped)."""
    found: list[LabState] = []
    directory = state_dir()
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("lab-*.json")):
        try:
            found.append(LabState(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda s: s.started)


def running_labs() -> list[LabState]:
    """Labs that are up and ready, oldest first: left up by `lab up`, or built by a live process."""
    return [s for s in load_all() if s.ready and (s.persistent or s.owner_alive())]


def running_lab(fingerprint: str | None = None) -> LabState | None:
    """The newest lab this process may use: one `lab up` left up, or one it built itself.

    A lab that another live process built for itself (a `lab verify` run, a
    test) is that process's: using it would race its listeners and its cleanup.
    """
    labs = [
        s
        for s in running_labs()
        if (s.persistent or s.pid == os.getpid())
        and (fingerprint is None or s.fingerprint == fingerprint)
    ]
    # Its own lab first: a test's lab, not the one a user left up beside it.
    labs.sort(key=lambda s: (s.pid == os.getpid(), s.started))
    return labs[-1] if labs else None


@contextlib.contextmanager
def exclusive(state: LabState, *, timeout: float = 300.0) -> Iterator[None]:
    """Hold the lab's lock: two verifiers in one lab would flush each other's conntrack."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / f"lab-{state.run_id}.lock", "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"lab {state.run_id} is busy: another verify has used it for {timeout:g} s"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
