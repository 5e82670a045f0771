"""The rules pane: the iptables rules of the node a hop is on, or of a chosen node, filtered.

The trace screen tells the pane which trace and hop are on show; the pane picks
the node, asks the session for its rules and marks the hop's walk in them. On a
big cluster a node's rules are rendered and indexed in a worker thread while
the pane says what it waits for. The pane keeps what it was told before it is
mounted (on a narrow terminal it is mounted when first shown) and draws it then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from model.errors import KubehopError
from model.trace import Hop, Trace
from tui.hopstyle import literal
from tui.session import Session
from tui.widgets.rules_view import RulesView, cached_index, index_rules

if TYPE_CHECKING:
    from tui.session import NodePages


def reaches_a_node(trace: Trace) -> bool:
    """Whether any hop of `trace` is in a node's own namespace, where its rules are."""
    return any(h.where.node is not None and h.where.netns == h.where.node for h in trace.hops)


class RulesPane(Vertical):
    """A node's rules with the packet's walk marked, and a filter over them (`/` opens it)."""

    DEFAULT_CSS = """
    RulesPane {
        layout: vertical;
    }

    #rules-filter {
        display: none;
    }

    #rules-filter.-open {
        display: block;
    }
    """

    def __init__(
        self, session: Session, *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.session = session
        """The cluster whose rules are shown."""
        self.pinned_node: str | None = None
        """The node whose rules are shown regardless of the packet, None to follow it."""
        self._trace: Trace | None = None
        self._hop: Hop | None = None
        self._start: str | None = None
        self._ready = False
        # Set on mount (`is_mounted` is set only after the mount handlers have run).
        # The node `o` started from: after the last other node, back to following.
        self._rendering: set[tuple[str, bool]] = set()
        """(node, whole text) a worker is reading or rendering: a redraw meanwhile (a step, a
        key) waits for that work instead of starting the same again."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter rules: text or chain (Esc clears)", id="rules-filter")
        yield RulesView(id="rules")

    def on_mount(self) -> None:
        self._ready = True
        self._draw()

    @property
    def followed(self) -> str | None:
        """The node whose rules go with the hop: its own, else the nearest hop's that has one.

        None when there are no nodes, or when the packet never reaches a node's
        own namespace (it stays inside one pod: pods have no rules).
        """
        trace, hop = self._trace, self._hop
        if trace is None or hop is None:
            nodes = self.session.cluster.nodes
            return nodes[0].name if nodes else None
        if not reaches_a_node(trace):
            return None
        if hop.where.node is not None:
            return hop.where.node
        before = trace.hops[: hop.seq][::-1]
        after = trace.hops[hop.seq + 1 :]
        for other in (*before, *after):
            if other.where.node is not None:
                return other.where.node
        return None

    @property
    def node(self) -> str | None:
        """The node whose rules are shown: the pinned one, else the one that goes with the hop."""
        return self.pinned_node if self.pinned_node is not None else self.followed

    @property
    def label(self) -> str:
        """The pane's tab label (a narrow terminal draws no borders: the tab names the node)."""
        node = self.node
        if node is None:
            return "Rules" if not self.session.cluster.nodes else "Rules: none"
        return f"Rules: {literal(node)}{' (pinned)' if self.pinned_node else ''}"

    def show(self, trace: Trace | None, hop: Hop | None) -> None:
        """Show the rules that go with `hop` of `trace` (None: no trace on show), as they are now."""
        self._trace, self._hop = trace, hop
        self._draw()

    def follow(self) -> None:
        """Follow the packet again (a new request starts there, whatever was pinned)."""
        self.pinned_node = None
        self._start = None

    def switch_node(self) -> None:
        """Show the next node's rules; after every other node, follow the packet again."""
        names = [n.name for n in self.session.cluster.nodes]
        if not names:
            return
        if self.pinned_node is None:
            self._start = self.followed
        current = self.node
        position = names.index(current) if current in names else -1
        following = names[(position + 1) % len(names)]
        if following == self._start or (self._start is None and position == len(names) - 1):
            self.follow()
        else:
            self.pinned_node = following
        self._draw()

    def scroll_to_match(self) -> None:
        """Bring the matched rule into view once laid out (a hidden pane has no height to scroll in)."""
        if self._ready:
            rules = self.query_one(RulesView)
            rules.call_after_refresh(rules.scroll_to_focus)

    # -- the filter -----------------------------------------------------------------------

    def open_filter(self) -> None:
        """Show the filter field and type in it."""
        field = self.query_one("#rules-filter", Input)
        field.add_class("-open")
        field.focus()

    def close_filter(self) -> bool:
        """Clear and hide the filter, if open, and give the keys back to the rules; True if it was open."""
        if not self._ready:
            return False
        field = self.query_one("#rules-filter", Input)
        if not field.has_class("-open"):
            return False
        field.value = ""
        field.remove_class("-open")
        self.query_one(RulesView).focus()
        return True

    @on(Input.Changed, "#rules-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(RulesView).filter_text = event.value
        self._draw()

    @on(Input.Submitted, "#rules-filter")
    def _filter_submitted(self) -> None:
        self.query_one(RulesView).focus()

    # -- drawing --------------------------------------------------------------------------

    def _draw(self) -> None:
        if not self._ready:
            return  # drawn on mount
        node = self.node
        rules = self.query_one(RulesView)
        if node is None:
            trace = self._trace
            stays = trace is not None and self.session.cluster.nodes and not reaches_a_node(trace)
            self.border_title = "Rules · none for this request" if stays else "Rules"
            self.border_subtitle = ""
            rules.show(None, "", None, placeholder=self._why_no_rules())
            return
        if self.pinned_node:
            how = " (chosen: o for the next node)"
        elif self._trace is not None:
            how = " (following the packet)"
        else:
            how = ""
        self.border_title = escape(f"Rules · {node}{how}")
        session = self.session
        searching = bool(rules.filter_text.strip())
        if session.big and not (
            session.rules_ready(node) and cached_index(session.rules_text(node))
        ):
            # Hundreds of thousands of lines. In iptables mode the pane draws them as they
            # come on screen, from where each chain starts (counted, not rendered): once
            # the chains every node shares are counted, a node's own take milliseconds and
            # are counted here. The shared count, a search and another mode's whole text
            # take seconds: they are made off the event loop, so stepping and the keys
            # stay quick while the pane says what it waits for.
            if not searching and session.pages_ready(node):
                pages = session.rules_pages(node)
                if pages is not None:
                    self._show(node, pages)
                    return
            if searching:
                waiting = f"Rendering {node}'s whole table to search it…"
            else:
                waiting = f"Reading {node}'s kube-proxy rules…"
            rules.show(node, "", None, placeholder=waiting)
            self.border_subtitle = "rendering…"
            # Started once the screen is drawn: the work holds the interpreter, and the
            # trace (computed in milliseconds) shows first.
            if (node, searching) not in self._rendering:
                self._rendering.add((node, searching))
                self.call_after_refresh(self._render_rules, node, searching)
            return
        try:
            text = session.rules_text(node)
        except KubehopError as err:
            self.notify(escape(str(err)), severity="error")
            rules.show(node, "", None, placeholder=f"kubehop cannot show {node}'s rules: {err}")
            self.border_subtitle = ""
            return
        self._show(node, text)

    def _show(self, node: str, text: str | NodePages | None) -> None:
        """Show `text` of `node` with the walk of the hop on show marked, if it is on `node`."""
        rules = self.query_one(RulesView)
        hop = self._hop
        on_node = hop is not None and hop.where.node == node
        rules.show(node, text if text is not None else "", hop if on_node else None)
        index = rules.index
        self.border_subtitle = escape(
            f"{rules.visible_rows:,}/{len(index.lines):,} lines · {index.rule_count:,} rules"
        )

    def _why_no_rules(self) -> str:
        trace = self._trace
        if not self.session.cluster.nodes:
            return "This cluster has no nodes, so there are no rules to show."
        if trace is not None and trace.hops:
            where = trace.hops[0].where.netns.rsplit("/", 1)[-1]
            return (
                f"This request never leaves {where}'s network namespace, and a pod's namespace "
                "has no iptables rules (the CNI sets none there): no node's rules see this "
                "packet. Press o to look at a node's rules anyway."
            )
        return "No rules to show."

    @work(thread=True, group="rules")
    def _render_rules(self, node: str, whole: bool) -> None:
        session = self.session
        try:
            # Pages where the mode gives them (iptables), else the whole text.
            if whole or session.rules_pages(node) is None:
                index_rules(session.rules_text(node))
        except KubehopError as err:
            self.app.call_from_thread(self._render_failed, node, whole, str(err))
            return
        # Drawn with whatever hop and node are current by then.
        self.app.call_from_thread(self._rendered, node, whole)

    def _rendered(self, node: str, whole: bool) -> None:
        self._rendering.discard((node, whole))
        if self.node == node:
            self._draw()

    def _render_failed(self, node: str, whole: bool, message: str) -> None:
        self._rendering.discard((node, whole))
        self.notify(escape(message), severity="error")
        if self.node == node:
            self.query_one(RulesView).show(
                node, "", None, placeholder=f"kubehop cannot show {node}'s rules: {message}"
            )
            self.border_subtitle = ""
