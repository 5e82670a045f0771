"""`ipvsadm-save -n` and `ipvsadm -Ln`, read into virtual servers; bad input is one line."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from model.errors import RulesParseError
from model.ipvs import RealServer
from model.packet import Proto
from sim.proxy.ipvs.save import ipvsadm_list, ipvsadm_save
from sim.readers.ipvsadm import is_ipvsadm_text, parse_ipvsadm
from tests.proxy.test_ipvs_rules import NODE, Ep, web

SAVE = """\
-A -t 10.96.0.10:80 -s rr -p 600
-a -t 10.96.0.10:80 -r 10.244.1.7:8080 -m -w 1
-a -t 10.96.0.10:80 -r 10.244.2.5:8080 -m -w 0
-A -u 10.96.0.53:53 -s sh -b sh-port
"""

LIST = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:80 rr persistent 600
  -> 10.244.1.7:8080              Masq    1      3          0
UDP  10.96.0.53:53 sh (sh-port)
"""


@pytest.mark.parametrize("text", [SAVE, LIST], ids=["ipvsadm-save -n", "ipvsadm -Ln"])
def test_virtual_and_real_servers_are_read(text: str) -> None:
    assert is_ipvsadm_text(text)
    table = parse_ipvsadm(text, "node-a.ipvs")
    vs = table.lookup(Proto.TCP, IPv4Address("10.96.0.10"), 80)
    assert vs is not None and (vs.scheduler, vs.persistent) == ("rr", 600)
    assert vs.real_servers[0] == RealServer(
        IPv4Address("10.244.1.7"), 8080, 1, "masq", 5 if text is LIST else 2
    )
    udp = table.lookup(Proto.UDP, IPv4Address("10.96.0.53"), 53)
    assert udp is not None and (udp.scheduler, udp.flags) == ("sh", ("sh-port",))


def test_a_rendered_table_reads_back_the_same() -> None:
    from sim.proxy.ipvs import IPVS

    rules = IPVS.node_rules(web(Ep("10.244.2.5"), Ep("10.244.1.7", NODE)), NODE)
    for text in (ipvsadm_save(rules.ipvs), ipvsadm_list(rules.ipvs)):
        read = parse_ipvsadm(text, "x")
        assert {(vs.key, tuple(r.addr for r in vs.real_servers)) for vs in read.services} == {
            (vs.key, tuple(sorted(r.addr for r in vs.real_servers))) for vs in rules.ipvs.services
        }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-A -t 10.96.0.10 -s rr\n", "x.ipvs:1: '10.96.0.10' is not an IPv4 address:port"),
        ("-a -t 10.96.0.10:80 -r 1.2.3.4:80 -m -w 1\n",
         "x.ipvs:1: a real server before its virtual server's line"),
        ("-A -t 10.96.0.10:80 -s rr\nhello\n",
         "x.ipvs:2: unexpected line 'hello' (expected `ipvsadm-save -n`'s -A/-a lines or"
         " `ipvsadm -Ln`'s service and -> lines)"),
        ("-A -x 10.96.0.10:80\n", "x.ipvs:1: expected -t, -u or --sctp-service and VIP:PORT after -A"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(RulesParseError) as caught:
        parse_ipvsadm(text, "x.ipvs")
    assert str(caught.value) == message
