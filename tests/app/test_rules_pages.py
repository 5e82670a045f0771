"""A big node's rules in the rules pane: drawn as they come on screen, the same lines as the
whole text, the decision marked, and a search over the whole text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from model.cluster import ProxyMode
from sim.cluster.load import demo_cluster, with_mode
from sim.cluster.rules import Listing, listing_text, node_listing, render_rules
from sim.proxy.ipvs import lazy as ipvs_lazy
from sim.readers.pages import ListingPages, Row, TextPages, index_rows, pages_text
from tests.app.support import at, make_app, scenario, screen_of, shown
from tests.proxy.lazy_support import fresh_node_caches
from tui.app import KubehopApp
from tui.screens.trace import TraceScreen
from tui.widgets.rules_view import PagedIndex, RulesView, filter_rows, index_rules


@pytest.fixture(autouse=True)
def _big(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every cluster counts as big: the pane takes the path it takes at the scale limits.
    monkeypatch.setattr("tui.session._BIG", 0)
    with fresh_node_caches():
        yield


async def _settle(screen: TraceScreen) -> None:
    await screen.app.workers.wait_for_complete()
    await screen.app.workers.wait_for_complete()


def _rows(rules: RulesView) -> list[tuple[str, str, str, int]]:
    index = rules.index
    return [
        (index.lines[r], index.tables[r], index.chains[r], index.numbers[r])
        for r in range(len(index.lines))
    ]


async def _at_the_dnat(pilot: Pilot[int]) -> tuple[TraceScreen, RulesView]:
    """Scenario 3's trace at its DNAT hop, the rules pane's work done: the screen and its rules."""
    assert isinstance(pilot.app, KubehopApp)
    screen = screen_of(pilot.app)
    await _settle(screen)
    screen.go_to(at(screen, "dnat"))
    await _settle(screen)
    await pilot.pause()
    rules = screen.query_one(RulesView)
    assert isinstance(rules.index, PagedIndex)
    return screen, rules


async def test_a_big_nodes_rules_are_drawn_line_for_line_as_the_whole_text() -> None:
    app = make_app(request=scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen, rules = await _at_the_dnat(pilot)
        node = rules.node
        assert node is not None
        whole = index_rules(render_rules(screen.session.cluster, node))
        # Every line, its table, chain and rule number: what the walk marks rest on.
        assert _rows(rules) == [
            (whole.lines[r], whole.tables[r], whole.chains[r], whole.numbers[r])
            for r in range(len(whole.lines))
        ]
        assert rules.index.rule_count == whole.rule_count
        assert rules.index.chain_width == whole.chain_width
        assert rules.focus_row is not None
        focused = whole.lines[rules.focus_row]
        assert "-j DNAT --to-destination" in focused
        assert focused.split()[1].startswith("KUBE-SEP-")
        # On screen: the DNAT rule marked, its target in view.
        drawn = shown(rules)
        assert any(line.startswith("▶") and "DNAT" in line for line in drawn.splitlines())
        assert "rules" in str(screen.rules_pane.border_subtitle)


async def test_o_shows_the_next_nodes_rules_as_pages_too() -> None:
    app = make_app(request=scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await _settle(screen)
        first = screen.query_one(RulesView).node
        await pilot.press("o")
        await _settle(screen)
        await pilot.pause()
        rules = screen.query_one(RulesView)
        assert rules.node is not None and rules.node != first
        assert isinstance(rules.index, PagedIndex)
        whole = render_rules(screen.session.cluster, rules.node).splitlines()
        assert [rules.index.lines[r] for r in range(len(rules.index.lines))] == whole


async def test_a_search_on_a_big_node_renders_the_whole_text_and_filters_it() -> None:
    app = make_app(request=scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await _settle(screen)
        await pilot.press("slash", *"dnat")
        await _settle(screen)
        await pilot.pause()
        rules = screen.query_one(RulesView)
        assert not isinstance(rules.index, PagedIndex)
        node = rules.node
        assert node is not None
        whole = index_rules(render_rules(screen.session.cluster, node))
        assert rules.visible_rows == len(filter_rows(whole, "dnat")) > 0
        drawn = [line for line in shown(rules).splitlines() if line.strip()]
        assert len(drawn) == min(rules.visible_rows, rules.size.height)
        assert any("DNAT --to-destination" in line for line in drawn)


async def test_in_nftables_mode_a_big_nodes_table_comes_in_pages_with_the_dnat_marked() -> None:
    cluster = with_mode(demo_cluster(), ProxyMode.NFTABLES.value)
    app = make_app(request=scenario("3"), cluster=cluster)
    async with app.run_test(size=(160, 48)) as pilot:
        screen, rules = await _at_the_dnat(pilot)
        assert rules.node is not None
        whole = node_listing(screen.session.cluster, rules.node).splitlines()
        assert [rules.index.lines[r] for r in range(len(rules.index.lines))] == whole
        assert whole[0] == "# nft list table ip kube-proxy"
        assert rules.focus_row is not None
        assert "dnat to" in whole[rules.focus_row]
        assert any(line.startswith("▶") and "dnat to" in line for line in shown(rules).splitlines())


async def test_in_ipvs_mode_the_chosen_real_server_is_marked_without_reading_every_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Marking IPVS's choice looks its ipvsadm-save lines up; asking the lookup for its
    # size once read every row of a big node (11 s at the scale limits).
    read: list[int] = []
    real_row = ListingPages.row

    def counted(self: ListingPages, r: int) -> Row:
        read.append(r)
        return real_row(self, r)

    monkeypatch.setattr(ListingPages, "row", counted)
    # A cluster this small is built whole; built in parts, as a big one, it has pages.
    monkeypatch.setattr(ipvs_lazy, "LAZY_FROM_PORTS", 0)
    ipvs_lazy.ipvs_index.clear()
    app = make_app(request=scenario("3"), cluster=with_mode(demo_cluster(), "ipvs"))
    async with app.run_test(size=(160, 48)) as pilot:
        screen, rules = await _at_the_dnat(pilot)
        assert rules.node is not None
        whole = node_listing(screen.session.cluster, rules.node).splitlines()
        assert rules.focus_row is not None
        chosen = whole[rules.focus_row]
        assert chosen.startswith("-a -t 10.101.100.102:80 -r 192.168.") and chosen.endswith(
            "-m -w 1"
        )
        assert rules.focus_row in rules.matched_rows
        assert len(set(read)) < len(whole) / 2


@pytest.mark.parametrize("mode", [m.value for m in ProxyMode])
def test_pages_key_every_row_as_the_rules_pane_keys_a_whole_listing(mode: str) -> None:
    # sim.readers.pages and the pane's own index of a whole text must agree: marks
    # found in pages land where they land in the text.
    cluster = with_mode(demo_cluster(), mode)
    for node in cluster.nodes:
        text = node_listing(cluster, node.name)
        whole = index_rules(text)
        rows = index_rows(text.splitlines())
        assert rows == [
            (whole.lines[r], whole.tables[r], whole.chains[r], whole.numbers[r])
            for r in range(len(whole.lines))
        ]
        pages = TextPages(text)
        assert pages.rule_count == whole.rule_count
        for line, row in (whole.ipvs_rows or {}).items():
            assert pages.find_line(line) == row


def test_listing_pages_join_commands_as_the_listing_text_does() -> None:
    texts = ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n", "-A -t 10.96.0.1:443 -s rr\n")
    parts = [("iptables-save", TextPages(texts[0])), ("ipvsadm-save -n", TextPages(texts[1]))]
    joined = listing_text(
        tuple(Listing(command, text) for (command, _), text in zip(parts, texts, strict=True))
    )
    pages = ListingPages(parts)
    assert pages_text(pages) == joined
    assert pages.find("nat", "KUBE-A", 1) == joined.splitlines().index("-A KUBE-A -j RETURN")
    assert pages.find_line("-A -t 10.96.0.1:443 -s rr") == len(joined.splitlines()) - 1
    assert pages_text(ListingPages(parts[:1])) == texts[0]
    # A command that printed nothing still has its line.
    empty = [("ipset save", TextPages("")), *parts]
    assert pages_text(ListingPages(empty)) == listing_text(
        (
            Listing("ipset save", ""),
            *(Listing(c, t) for (c, _), t in zip(parts, texts, strict=True)),
        )
    )
