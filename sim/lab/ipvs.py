"""IPVS mode in the real-kernel lab: kube-proxy's virtual servers, sets and sysctls, per node netns.

IPVS needs the kernel's `ip_vs` module. The lab never loads a module (it
changes nothing outside its namespaces), so it only looks: a namespace sees
`/proc/net/ip_vs` when the module is there. Where it is not, or `ipvsadm` is
missing, or the kernel has no dummy device (kube-ipvs0 is one, and asking for
one could load the module), IPVS mode's lab cannot be built and this says
why; the simulation is then held to kube-proxy's expectations by the tests
alone. `ipvsadm` itself runs `modprobe ip_vs` when it cannot reach IPVS, so
the lab runs it only in a netns where `/proc/net/ip_vs` is there.

What a node's netns gets, in this order (`sim.lab.build` drives it):

1. the sysctls kube-proxy 1.31 sets in IPVS mode (`ipvs_sysctls`), each the netns's own;
2. `kube-ipvs0`, a dummy device left down, with the bound addresses as /32s
   (the topology's interface, as `ip addr show kube-ipvs0` renders it);
3. kube-proxy's ipsets, restored from the rendered `ipset save`, and the CNI's;
4. the iptables rules IPVS mode writes (`iptables-restore`), which match those sets;
5. `ipvsadm --set` when ipvs.tcpTimeout, tcpFinTimeout or udpTimeout is set;
6. the virtual servers and real servers, `ipvsadm -R` (what `ipvsadm-restore` runs)
   of the rendered `ipvsadm-save -n` lines (`restore_text`).

`lab down` deletes the namespaces, and the kernel drops all of it with them:
the netns's IPVS services and connections (ip_vs flushes a netns's table when
the netns goes), its sets, rules and sysctls, and kube-ipvs0 (a device made
with `ip link add` is deleted with its netns, never moved to the root one).
"""

from __future__ import annotations

import platform
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from model.cluster import KubeProxyConfig
from model.ipvs import IpvsTable
from sim.lab.failures import LabUnavailable
from sim.lab.netns import PREFIX, add_netns, delete_netns, in_netns

__all__ = [
    "DEVICE",
    "IPVS_PROC",
    "NO_IPVS",
    "ensure_available",
    "ipvs_missing",
    "ipvs_sysctls",
    "ipvs_unavailable",
    "ipvsadm",
    "kernel_release",
    "restore_text",
    "round_robin_differences",
    "sets_differences",
    "timeouts_args",
]

IPVS_PROC = "/proc/net/ip_vs"
"""What a netns shows when the kernel has IPVS."""
DEVICE = "kube-ipvs0"
"""The dummy device kube-proxy binds the Service addresses to."""
DUMMY_MODULE = Path("/sys/module/dummy")
"""There when the kernel has the dummy device (loaded, or built in: it has a parameter)."""
NO_IPVS = (
    "the kernel has no IPVS (no /proc/net/ip_vs in a lab namespace: the ip_vs module is"
    " not loaded, and the lab loads no module)"
)
"""Why, when a lab netns has no /proc/net/ip_vs."""


def ipvs_missing(netns: str) -> str | None:
    """Why the lab cannot program IPVS in the lab netns `netns` (None: it can)."""
    if in_netns(netns, ["cat", IPVS_PROC], check=False).returncode != 0:
        return NO_IPVS
    if shutil.which("ipvsadm") is None:
        return (
            "ipvsadm is not installed (the lab programs the virtual servers with it; Debian/"
            "Ubuntu: apt-get install ipvsadm)"
        )
    if not dummy_available():
        return (
            "the kernel has no dummy device (no /sys/module/dummy): kube-ipvs0 is one, and"
            " asking for one could load the module, which the lab never does"
        )
    return None


def dummy_available() -> bool:
    """The kernel has the dummy device (read from sysfs; nothing is loaded)."""
    return DUMMY_MODULE.is_dir()


def ipvs_unavailable() -> str | None:
    """Why the lab cannot program IPVS on this machine (None: it can).

    Makes a throwaway lab namespace, looks there (`ipvs_missing`), removes it.
    """
    netns = f"{PREFIX}{secrets.token_hex(3)}-ipvs-probe"
    add_netns(netns)
    try:
        return ipvs_missing(netns)
    finally:
        delete_netns(netns)


def ipvsadm(
    netns: str, args: Sequence[str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`ipvsadm ARGS…` in a lab netns, refused unless IPVS is there (else ipvsadm would modprobe)."""
    if in_netns(netns, ["cat", IPVS_PROC], check=False).returncode != 0:
        raise LabUnavailable(NO_IPVS)
    return in_netns(netns, ["ipvsadm", *args], stdin=stdin)


def kernel_release() -> str:
    """The running kernel's release (`uname -r`), which kube-proxy reads too."""
    return platform.release()


def _version(release: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def ipvs_sysctls(config: KubeProxyConfig, release: str) -> list[tuple[str, str]]:
    """The sysctls kube-proxy 1.31's IPVS proxier sets at start (NewProxier), in its order.

    conn_reuse_mode is set to 0 only on kernels 4.1 to 5.8: before 4.1 it does not
    exist, from 5.9 kube-proxy leaves it as it is (kubernetes#93297). With strictARP,
    the node answers ARP only for addresses on the receiving device.
    """
    found = [("net.ipv4.vs.conntrack", "1")]
    if (4, 1) <= _version(release) < (5, 9):
        found.append(("net.ipv4.vs.conn_reuse_mode", "0"))
    found += [
        ("net.ipv4.vs.expire_nodest_conn", "1"),
        ("net.ipv4.vs.expire_quiescent_template", "1"),
        ("net.ipv4.ip_forward", "1"),
    ]
    if config.ipvs_strict_arp:
        found += [("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2")]
    return found


def timeouts_args(config: KubeProxyConfig) -> list[str] | None:
    """`--set TCP TCPFIN UDP` when any of ipvs.tcpTimeout, tcpFinTimeout, udpTimeout is set
    (kube-proxy's ConfigureTimeouts; 0 keeps the kernel's value), else None."""
    if not any(t > 0 for t in config.ipvs_timeouts):
        return None
    return ["--set", *(str(t) for t in config.ipvs_timeouts)]


def restore_text(table: IpvsTable, saved: str) -> str:
    """`ipvsadm -R` input: the lines of `saved` (the rendered `ipvsadm-save -n`), each
    virtual server's `-a` lines in the reverse of the simulation's list.

    The kernel puts each new real server at the head of its virtual server's list, and
    rr walks the list from the head; so added in reverse, the kernel holds them in the
    order the simulation walks them. `ipvsadm-save -n` sorts what it prints, so the
    netns then prints `saved` back, unchanged.
    """
    blocks: list[tuple[str, dict[str, str]]] = []
    for line in saved.splitlines():
        if line.startswith("-A "):
            blocks.append((line, {}))
        elif line.startswith("-a ") and blocks:
            words = line.split()
            blocks[-1][1][words[words.index("-r") + 1]] = line
    by_label = {f"{vs.save_name}": vs for vs in table.services}
    lines: list[str] = []
    for head, servers in blocks:
        lines.append(head)
        vs = by_label.get(" ".join(head.split()[1:3]))
        order = [rs.addr for rs in reversed(vs.real_servers)] if vs is not None else []
        if sorted(order) != sorted(servers):
            order = list(servers)  # not the table's: keep the text's order
        lines += [servers[addr] for addr in order]
    return "\n".join(lines) + ("\n" if lines else "")


_SAVE_EXTRAS = re.compile(r" bucketsize \d+| initval 0x[0-9a-f]+")


def _sets(text: str) -> dict[str, tuple[str, set[str]]]:
    found: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        words = line.split(" ", 2)
        if len(words) == 3 and words[0] == "create":
            found[words[1]] = (_SAVE_EXTRAS.sub("", words[2]), set())
        elif len(words) == 3 and words[0] == "add" and words[1] in found:
            found[words[1]][1].add(words[2])
    return found


def sets_differences(rendered: str, saved: str) -> list[str]:
    """Where the netns's `ipset save` differs from kubehop's, for kubehop's sets.

    Compared set by set: headers without what ipset 7.11 and later adds (`bucketsize`,
    `initval`, a random seed), members as sets (a hash set prints them in hash order).
    """
    want, got = _sets(rendered), _sets(saved)
    differences: list[str] = []
    for name, (header, members) in want.items():
        if name not in got:
            differences.append(f"ipset save has no set {name}")
            continue
        if got[name][0] != header:
            differences.append(f"set {name}: kubehop has `{header}`, ipset has `{got[name][0]}`")
        missing, extra = sorted(members - got[name][1]), sorted(got[name][1] - members)
        if missing or extra:
            differences.append(
                f"set {name}: " + "; ".join(
                    part for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"extra {', '.join(extra)}" if extra else "",
                    ) if part
                )
            )  # fmt: skip
    return differences


def _cycle(sequence: Sequence[str]) -> list[str]:
    for period in range(1, len(sequence) + 1):
        if all(sequence[i] == sequence[i % period] for i in range(len(sequence))):
            return list(sequence[:period])
    return list(sequence)


def round_robin_differences(kernel: Sequence[str], simulated: Sequence[str]) -> list[str]:
    """Where the kernel's answers, connection after connection, are not kubehop's rr cycle.

    kubehop's sequence starts at the first real server; the kernel's may start anywhere in
    the cycle (earlier flows moved its position), so the kernel must follow the same cycle
    from some point of it.
    """
    if not kernel or not simulated:
        return []
    cycle = _cycle(simulated)
    for start in range(len(cycle)):
        if all(kernel[i] == cycle[(start + i) % len(cycle)] for i in range(len(kernel))):
            return []
    shown = " → ".join(kernel[: 2 * len(cycle)]) + (" …" if len(kernel) > 2 * len(cycle) else "")
    return [f"round-robin: kubehop cycles {' → '.join(cycle)}; the kernel answered {shown}"]


def ensure_available(netns: str) -> None:
    """Raise LabUnavailable, saying why, unless IPVS can be programmed in `netns`."""
    reason = ipvs_missing(netns)
    if reason is not None:
        raise LabUnavailable(
            f"this cluster's kube-proxy runs in IPVS mode, and the lab cannot program IPVS"
            f" here: {reason}"
        )
