"""nfacct counters inside a lab netns, made with one netlink message (no `nfacct` tool).

kube-proxy's rules name two extended accounting objects (`-m nfacct
--nfacct-name …`); iptables-restore refuses such a rule (ENOENT) unless the
object exists in the netns. kube-proxy creates them itself at start-up through
nfnetlink_acct, which is what `add_counter` does.
"""

from __future__ import annotations

import errno
import re
import socket
import struct

from sim.lab.netns import netns_socket

_NETLINK_NETFILTER = 12
_NFNL_SUBSYS_ACCT = 7
_NFNL_MSG_ACCT_NEW = 0
_NFACCT_NAME = 1
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_EXCL = 0x200
_NLM_F_CREATE = 0x400
_NLMSG_ERROR = 2

NFACCT_MATCH = re.compile(r" -m nfacct --nfacct-name +(\S+)")
"""An nfacct match as iptables-save prints it (two spaces before the name)."""


def counters_in(rules_text: str) -> list[str]:
    """The nfacct objects a ruleset refers to, in first-use order."""
    return list(dict.fromkeys(NFACCT_MATCH.findall(rules_text)))


def without_nfacct(rules_text: str) -> str:
    """The ruleset with its nfacct matches removed (they only count; they always match)."""
    return NFACCT_MATCH.sub("", rules_text)


def add_counter(netns: str, name: str) -> None:
    """Create the nfacct object `name` in a lab netns (an existing one is fine).

    Raises OSError when the kernel has no nfnetlink_acct.
    """
    encoded = name.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(encoded), _NFACCT_NAME) + encoded
    attr += b"\0" * (-len(attr) % 4)
    # nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id 0.
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0) + attr
    header = struct.pack(
        "=IHHII",
        16 + len(body),
        (_NFNL_SUBSYS_ACCT << 8) | _NFNL_MSG_ACCT_NEW,
        _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_EXCL,
        1,
        0,
    )
    with netns_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as sock:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        sock.send(header + body)
        answer = sock.recv(4096)
    _, kind, _, _, _ = struct.unpack("=IHHII", answer[:16])
    if kind != _NLMSG_ERROR:
        return
    (code,) = struct.unpack("=i", answer[16:20])
    if code == 0 or -code == errno.EBUSY or -code == errno.EEXIST:
        return
    raise OSError(-code, f"nfacct {name}: {errno.errorcode.get(-code, -code)}")
