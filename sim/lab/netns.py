"""Thin wrappers over `ip`, `ip netns exec` and setns(2), confined to the lab's namespaces.

Every function that touches the kernel takes a netns name and refuses any name
that is not a lab namespace (`kh-<run id>-…`), so no call here can reach the
root namespace by mistake: there is no `ip` call without `-n`, and commands
run as argv lists (no shell, so no `ip netns exec NS a && b` running `b` in
the root namespace). Every subprocess has a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence

from sim.lab.failures import LabError, LabUnavailable

PREFIX = "kh-"
"""Every lab netns name starts with this."""
LAB_NETNS = re.compile(r"^kh-([0-9a-f]{6})-[A-Za-z0-9_.-]+$")
"""A lab netns name: `kh-`, a six-hex-digit run id, `-`, what it is."""
REQUIRED_TOOLS = ("ip", "iptables-restore", "iptables-save", "iptables", "conntrack")
"""The commands the lab cannot do without."""
COMMAND_TIMEOUT = 15.0
"""Seconds any one command may take."""

_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"


def check_host() -> None:
    """Raise LabUnavailable unless this is Linux, we are root and the tools are installed."""
    if platform.system() != "Linux":
        raise LabUnavailable(
            f"the lab needs Linux network namespaces (this is {platform.system()})"
        )
    if os.geteuid() != 0:
        raise LabUnavailable("the lab needs root (it creates network namespaces): run it with sudo")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabUnavailable(
            f"the lab needs {', '.join(missing)} (Debian/Ubuntu: apt-get install "
            "iproute2 iptables conntrack)"
        )


def run_id_of(netns: str) -> str | None:
    """The run id in a lab netns name, None for any other name."""
    match = LAB_NETNS.match(netns)
    return match.group(1) if match else None


def _guard(netns: str) -> None:
    if run_id_of(netns) is None:
        # A bug, not a user mistake: nothing may run outside a lab namespace.
        raise ValueError(f"refusing to touch netns {netns!r}: not a lab namespace (kh-<id>-…)")


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run argv (no shell), capturing output; LabError names the command when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise LabError(f"`{' '.join(argv)}` took longer than {timeout:g} s") from err
    if check and done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(
            f"`{' '.join(argv)}` failed (exit {done.returncode}): {why[-1] if why else 'no output'}"
        )
    return done


def ip(netns: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """`ip -n NETNS ARGS…`: an ip command inside a lab netns; its stdout."""
    _guard(netns)
    return run(["ip", "-n", netns, *args], stdin=stdin, check=check).stdout


def in_netns(
    netns: str,
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`ip netns exec NETNS ARGV…`: one command (no shell) inside a lab netns."""
    _guard(netns)
    return run(["ip", "netns", "exec", netns, *argv], stdin=stdin, timeout=timeout, check=check)


def popen_in_netns(netns: str, argv: Sequence[str]) -> subprocess.Popen[str]:
    """Start a long-running command inside a lab netns, with pipes for stdin and stdout."""
    _guard(netns)
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Its own session: a Ctrl-C on the terminal reaches only us, and we end it.
        start_new_session=True,
    )


def add_netns(netns: str) -> None:
    """Create a lab netns (`ip netns add`)."""
    _guard(netns)
    run(["ip", "netns", "add", netns])


def lab_netns() -> list[str]:
    """Every lab netns on the machine (any run), by name."""
    try:
        names = os.listdir(_NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if run_id_of(n) is not None)


def netns_pids(netns: str) -> list[int]:
    """The processes inside a lab netns (`ip netns pids`)."""
    _guard(netns)
    done = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def delete_netns(netns: str, *, grace: float = 1.0) -> None:
    """End the processes inside a lab netns, then delete it (and so its interfaces)."""
    _guard(netns)
    if not os.path.exists(os.path.join(_NETNS_DIR, netns)):
        return
    # A process still inside would keep the namespace (and its veths) alive
    # after `ip netns del` unmounts its name.
    pids = netns_pids(netns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            time.sleep(0.02)
        if not pids:
            break
    run(["ip", "netns", "del", netns], check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still "exists"; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def set_sysctl(netns: str, key: str, value: str) -> None:
    """`sysctl -w KEY=VALUE` inside a lab netns (its /proc/sys/net is its own)."""
    path = "/proc/sys/" + key.replace(".", "/")
    # `sh -c` is avoided: a tiny write through `tee` keeps it one argv.
    in_netns(netns, ["tee", path], stdin=f"{value}\n")


def get_sysctl(netns: str, key: str) -> str | None:
    """A sysctl's value inside a lab netns, None when the key does not exist there."""
    path = "/proc/sys/" + key.replace(".", "/")
    done = in_netns(netns, ["cat", path], check=False)
    return done.stdout.strip() if done.returncode == 0 else None


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_socket(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that lives in a lab netns.

    A socket belongs to the netns of the thread that created it, for good. A
    short-lived thread enters the netns with setns(2), makes the socket and
    ends, so no thread of ours ever stays in a lab netns and this process's
    own namespace never changes.
    """
    _guard(netns)
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def create() -> None:
        try:
            fd = os.open(os.path.join(_NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            made.append(socket.socket(family, kind, proto))
        except BaseException as err:
            failed.append(err)

    worker = threading.Thread(target=create, name=f"setns {netns}", daemon=True)
    worker.start()
    worker.join(COMMAND_TIMEOUT)
    if failed:
        raise LabError(f"cannot open a socket in {netns}: {failed[0]}") from failed[0]
    if not made:
        raise LabError(f"cannot open a socket in {netns}: setns timed out")
    return made[0]
