"""What a node's IPVS table and kube-proxy's ipsets have that they should not, and the reverse.

`kubehop rules --mode ipvs --node node-a --diff node-a.rules` compares the
node's own `ipvsadm-save -n` (and `ipset save`, when the file has it) with
what kubehop renders from the cluster dump, then the iptables rules IPVS mode
still writes as in iptables mode (`sim.proxy.iptables.diff`).

Virtual servers are compared by protocol, address and port, with their
scheduler and persistence; real servers by address, port, forwarding method
and weight, whatever order ipvsadm listed them in. A real server of weight 0
only the node has is one kube-proxy is draining (graceful termination: it
removes it once its connections end), said apart rather than counted as a
difference. Sets are compared member by member for kube-proxy's own sets
(`KUBE-…`); other tools' sets are not kube-proxy's business. Connection
counters are run-time state and are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from model.ipset import IpSet, IpSets
from model.ipvs import FORWARD_FLAGS, IpvsTable, RealServer, VirtualServer
from sim.proxy.ipvs.save import sorted_services
from sim.proxy.tablediff import Change, TableDiff, compare_items, endpoint_lines, hunks

__all__ = ["IpvsDiff", "diff_ipvs", "ipvs_diff_text"]


@dataclass(frozen=True)
class IpvsDiff(TableDiff):
    """The differences in IPVS mode's kernel state (virtual servers and kube-proxy's sets)
    between rendered and real; endpoints are `IP:PORT of TCP VIP:PORT (owner)`, and
    `no_table` says the file has no `ipvsadm-save -n`."""

    draining: tuple[str, ...] = ()
    """`IP:PORT of TCP VIP:PORT`: weight-0 real servers only the node has."""
    sets_compared: bool = True
    """The node's file holds `ipset save` (or `ipset list`) output."""
    places: tuple[str, ...] = ()
    """Every place compared, in the order ipvsadm and ipset list them."""


def _service_line(vs: VirtualServer) -> str:
    line = f"-A {vs.save_name} -s {vs.scheduler}"
    if vs.persistent is not None:
        line += f" -p {vs.persistent}"
    if vs.flags:
        line += " -b " + ",".join(vs.flags)
    return line


def _server_line(vs: VirtualServer, rs: RealServer) -> str:
    return f"-a {vs.save_name} -r {rs.addr} {FORWARD_FLAGS.get(rs.forward, '-m')} -w {rs.weight}"


def _member_text(name: str, member: tuple[IPv4Network | tuple[str, int], ...]) -> str:
    parts: list[str] = []
    for value in member:
        if isinstance(value, IPv4Network):
            parts.append(str(value.network_address) if value.prefixlen == 32 else str(value))
        else:
            proto, port = value
            parts.append(f"{proto}:{port}" if proto else str(port))
    return f"add {name} {','.join(parts)}"


def _sets(sets: IpSets) -> dict[str, IpSet]:
    return {name: s for name, s in sets.items() if name.startswith("KUBE-")}


def diff_ipvs(
    node: str,
    rendered: IpvsTable,
    rendered_sets: IpSets,
    real: IpvsTable | None,
    real_sets: IpSets,
    *,
    real_source: str,
) -> IpvsDiff:
    """How the node's IPVS table and kube-proxy's sets (`real…`) differ from kubehop's."""
    rendered_source = f"{node}: kube-proxy's IPVS table and ipsets as kubehop renders them"
    if real is None:
        return IpvsDiff(node, rendered_source, real_source, (), (), no_table=True)
    missing: list[Change] = []
    extra: list[Change] = []
    missing_eps: list[str] = []
    stale_eps: list[str] = []
    draining: list[str] = []
    places: list[str] = []
    ours = {vs.key: vs for vs in rendered.services}
    theirs = {vs.key: vs for vs in real.services}
    for vs in sorted_services(IpvsTable((*rendered.services, *real.services))):
        if vs.key in ours and vs is not ours[vs.key]:
            continue  # the node's copy of a virtual server both have: compared with ours
        mine, have = ours.get(vs.key), theirs.get(vs.key)
        where = f"virtual server {vs.label}"
        want = [] if mine is None else [_service_line(mine)]
        got = [] if have is None else [(_service_line(have), have.lineno)]
        want_rs = {} if mine is None else {rs.addr: rs for rs in mine.real_servers}
        got_rs = [] if have is None else list(have.real_servers)
        owner = f" ({mine.owner})" if mine is not None and mine.owner else ""
        for rs in got_rs:
            if rs.addr not in want_rs:
                (draining if rs.weight == 0 else stale_eps).append(f"{rs.addr} of {vs.label}")
        got_rs = [rs for rs in got_rs if rs.weight != 0 or rs.addr in want_rs]
        want += [_server_line(vs, rs) for rs in want_rs.values()]
        got += [(_server_line(vs, rs), rs.lineno) for rs in got_rs]
        have_addrs = {rs.addr for rs in got_rs}
        missing_eps += [
            f"{addr} of {vs.label}{owner}"
            for addr in want_rs
            if addr not in have_addrs and have is not None
        ]
        places.append(where)
        compare_items(where, want, got, missing, extra)
    sets_compared = bool(real_sets)
    if sets_compared:
        mine_sets, their_sets = _sets(rendered_sets), _sets(real_sets)
        for name in [*mine_sets, *(n for n in their_sets if n not in mine_sets)]:
            want = (
                sorted(_member_text(name, m) for m in mine_sets[name].members)
                if (name in mine_sets)
                else []
            )
            got = (
                [(_member_text(name, m), 0) for m in their_sets[name].members]
                if name in their_sets
                else []
            )
            if name not in their_sets:
                missing.append(Change(f"ipset {name}", f"create {name} {mine_sets[name].type}"))
            places.append(f"ipset {name}")
            compare_items(f"ipset {name}", want, got, missing, extra)
    return IpvsDiff(
        node,
        rendered_source,
        real_source,
        tuple(missing),
        tuple(extra),
        missing_endpoints=tuple(missing_eps),
        stale_endpoints=tuple(stale_eps),
        draining=tuple(draining),
        sets_compared=sets_compared,
        places=tuple(places),
    )


def ipvs_diff_text(diff: IpvsDiff) -> str:
    """The differences as a unified-diff-like listing, then a summary in words."""
    lines = [f"--- {diff.rendered}", f"+++ {diff.real}"]
    if diff.no_table:
        lines += [
            "",
            f"{diff.node}: {diff.real} holds no IPVS table (add the node's `ipvsadm-save -n`"
            " to the file; is its kube-proxy in IPVS mode?)",
        ]
        return "\n".join(lines) + "\n"
    lines += hunks(diff.places, diff.missing, diff.extra, diff.real)
    lines.append("")
    if diff.same:
        lines.append(
            f"{diff.node}: the IPVS table"
            + (" and kube-proxy's ipsets are" if diff.sets_compared else " is")
            + " what kube-proxy should have programmed for this cluster"
        )
    else:
        lines.append(
            f"{diff.node}: {len(diff.missing)} line(s) of IPVS state missing,"
            f" {len(diff.extra)} the cluster does not explain"
        )
    lines += endpoint_lines(diff.missing_endpoints, diff.stale_endpoints, "the node's IPVS table")
    lines += [
        f"draining: {e} (weight 0: kube-proxy removes it once its connections end)"
        for e in diff.draining
    ]
    not_compared = "connection counters"
    if not diff.sets_compared:
        not_compared += ", and kube-proxy's ipsets (the file has no `ipset save`)"
    lines.append(f"not compared: {not_compared}")
    return "\n".join(lines) + "\n"
