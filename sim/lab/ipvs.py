"""Whether the real-kernel lab can check IPVS mode here, asked inside a lab namespace.

IPVS needs the kernel's `ip_vs` module. The lab never loads a module (it
changes nothing outside its namespaces), so it only looks: a namespace sees
`/proc/net/ip_vs` when the module is there. Where it is not, or `ipvsadm`
is missing, IPVS mode's lab checks do not run, and this says why; the
simulation is then held to kube-proxy's expectations by the tests alone.
"""

from __future__ import annotations

import secrets
import shutil

from sim.lab.netns import PREFIX, add_netns, delete_netns, in_netns

__all__ = ["ipvs_unavailable"]


def ipvs_unavailable() -> str | None:
    """Why the lab cannot program IPVS on this machine (None: it can).

    Makes a throwaway lab namespace, reads `/proc/net/ip_vs` there, removes it.
    """
    netns = f"{PREFIX}{secrets.token_hex(3)}-ipvs-probe"
    add_netns(netns)
    try:
        probe = in_netns(netns, ["cat", "/proc/net/ip_vs"], check=False)
    finally:
        delete_netns(netns)
    if probe.returncode != 0:
        return (
            "the kernel has no IPVS (no /proc/net/ip_vs in a lab namespace: the ip_vs module is"
            " not loaded, and the lab loads no module)"
        )
    if shutil.which("ipvsadm") is None:
        return "ipvsadm is not installed (the lab programs virtual servers with it)"
    return None
