"""The lab's stand-in for a pod's containers: listen, and tell each caller who it saw.

Run inside a pod's lab netns with the venv's interpreter, by path (it imports
nothing from kubehop):

    ip netns exec kh-…-p-default.pod2 python listener.py --tcp 8080 --udp 53

For every TCP connection it writes one line and closes; for every UDP
datagram it answers with the same line:

    <peer ip> <peer port> <local ip> <local port>

— the address the server saw the request come from (after any SNAT) and the
address it was reached at (after any DNAT: the endpoint). It prints `ready`
once every socket is bound, and exits when its stdin closes (its parent ended)
or after --lifetime seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import sys
import threading
import time

# socket.IP_PKTINFO arrived in Python 3.12; the Linux value is 8.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def _line(peer: tuple[str, int], local: tuple[str, int]) -> bytes:
    return f"{peer[0]} {peer[1]} {local[0]} {local[1]}\n".encode()


def _watch_stdin() -> None:
    # The parent holds our stdin: when it exits (even by SIGKILL) we read EOF.
    try:
        while sys.stdin.readline():
            pass
    finally:
        os._exit(0)


def _bind(sock: socket.socket, port: int) -> bool:
    """Bind to the port; False when another listener of the lab already serves it."""
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        sock.close()
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tcp", type=int, nargs="*", default=[])
    parser.add_argument("--udp", type=int, nargs="*", default=[])
    parser.add_argument("--lifetime", type=float, default=900.0)
    args = parser.parse_args()

    sel = selectors.DefaultSelector()
    for port in args.tcp:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _bind(tcp, port):
            tcp.listen(128)
            tcp.setblocking(False)
            sel.register(tcp, selectors.EVENT_READ, "tcp")
    for port in args.udp:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # IP_PKTINFO: the datagram's destination address, i.e. the endpoint.
        udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        if _bind(udp, port):
            udp.setblocking(False)
            sel.register(udp, selectors.EVENT_READ, "udp")

    threading.Thread(target=_watch_stdin, daemon=True).start()
    timer = threading.Timer(args.lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    print("ready", flush=True)

    while True:
        if not sel.get_map():
            time.sleep(1.0)  # every port was served already; wait for the end
            continue
        for key, _ in sel.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if key.data == "tcp":
                    conn, peer = sock.accept()
                    with conn:
                        conn.settimeout(1.0)
                        conn.sendall(_line(peer, conn.getsockname()))
                else:
                    _, anc, _, peer = sock.recvmsg(2048, socket.CMSG_SPACE(12))
                    local = ("0.0.0.0", sock.getsockname()[1])
                    for level, kind, value in anc:
                        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                            # struct in_pktinfo: ifindex, spec_dst, addr (the destination).
                            local = (socket.inet_ntoa(value[8:12]), local[1])
                    sock.sendto(_line(peer, local), peer)
            except OSError:
                continue


if __name__ == "__main__":
    sys.exit(main())
