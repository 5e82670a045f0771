"""The rules pane: the iptables rules of the node a hop is on, or of a pinned node, filtered.

The trace screen tells the pane which trace and hop are on show; the pane picks
the node, asks the session for its rules and marks the hop's walk in them. On a
big cluster a node's rules are rendered and indexed in a worker thread while
the pane says what it waits for.
"""

from __future__ import annotations

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input

from model.errors import KubehopError
from model.trace import Hop, Trace
from tui.hopstyle import literal
from tui.session import Session
from tui.widgets.rules_view import RulesView, cached_index, index_rules


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

    class Labelled(Message):
        """The pane's tab label changed (a narrow terminal draws no borders: the tab names the node)."""

        def __init__(self, label: str) -> None:
            super().__init__()
            self.label = label
            """`Rules`, or `Rules: node`, with ` (pinned)` when pinned."""

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
        self._label = "Rules"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter rules: text or chain (Esc clears)", id="rules-filter")
        yield RulesView(id="rules")

    @property
    def node(self) -> str | None:
        """The node whose rules go with the hop: its own, else the nearest hop's that has one."""
        if self.pinned_node is not None:
            return self.pinned_node
        trace, hop = self._trace, self._hop
        if trace is None or hop is None:
            nodes = self.session.cluster.nodes
            return nodes[0].name if nodes else None
        if hop.where.node is not None:
            return hop.where.node
        before = trace.hops[: hop.seq][::-1]
        after = trace.hops[hop.seq + 1 :]
        for other in (*before, *after):
            if other.where.node is not None:
                return other.where.node
        return None

    def show(self, trace: Trace | None, hop: Hop | None) -> None:
        """Show the rules that go with `hop` of `trace` (None: no trace on show), as they are now."""
        self._trace, self._hop = trace, hop
        self._draw()

    def switch_node(self) -> None:
        """Show the next node's rules; after the last node, follow the packet again."""
        names = [n.name for n in self.session.cluster.nodes]
        if not names:
            return
        if self.pinned_node is None:
            current = self.node
            position = names.index(current) if current in names else -1
            self.pinned_node = names[(position + 1) % len(names)]
        else:
            position = names.index(self.pinned_node) if self.pinned_node in names else -1
            self.pinned_node = names[position + 1] if position + 1 < len(names) else None
        self._draw()

    def scroll_to_match(self) -> None:
        """Bring the matched rule into view once laid out (a hidden pane has no height to scroll in)."""
        rules = self.query_one(RulesView)
        rules.call_after_refresh(rules.scroll_to_focus)

    # -- the filter -----------------------------------------------------------------------

    def open_filter(self) -> None:
        """Show the filter field and type in it."""
        field = self.query_one("#rules-filter", Input)
        field.add_class("-open")
        field.focus()

    def close_filter(self) -> None:
        """Clear and hide the filter, if open, and give the keys back to the rules."""
        field = self.query_one("#rules-filter", Input)
        if field.has_class("-open"):
            field.value = ""
            field.remove_class("-open")
            self.query_one(RulesView).focus()

    @on(Input.Changed, "#rules-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(RulesView).filter_text = event.value
        self._draw()

    @on(Input.Submitted, "#rules-filter")
    def _filter_submitted(self) -> None:
        self.query_one(RulesView).focus()

    # -- drawing --------------------------------------------------------------------------

    def _draw(self) -> None:
        node, hop = self.node, self._hop
        rules = self.query_one(RulesView)
        if node is None:
            rules.show(None, "", None)
            self.border_title = "Rules"
            self._relabel("Rules")
            return
        how = "pinned" if self.pinned_node else "following the packet"
        self._relabel(f"Rules: {literal(node)}{' (pinned)' if self.pinned_node else ''}")
        if self.session.big and not (
            self.session.rules_ready(node) and cached_index(self.session.rules_text(node))
        ):
            # Hundreds of thousands of lines: rendered off the event loop, so
            # stepping and the keys stay quick while the pane says what it waits for.
            rules.show(node, "", None, placeholder=f"Rendering {node}'s kube-proxy rules…")
            self.border_title = escape(f"Rules · {node} ({how})")
            self.border_subtitle = "rendering…"
            self._render_rules(node)
            return
        try:
            text = self.session.rules_text(node)
        except KubehopError as err:
            self.notify(escape(str(err)), severity="error")
            return
        on_node = hop is not None and hop.where.node == node
        rules.show(node, text, hop if on_node else None)
        self.border_title = escape(f"Rules · {node} ({how})")
        index = rules.index
        self.border_subtitle = escape(
            f"{rules.visible_rows:,}/{len(index.lines):,} lines · {index.rule_count:,} rules"
        )

    def _relabel(self, label: str) -> None:
        if label != self._label:
            self._label = label
            self.post_message(self.Labelled(label))

    @work(thread=True, exclusive=True, group="rules")
    def _render_rules(self, node: str) -> None:
        session = self.session
        try:
            index_rules(session.rules_text(node))
        except KubehopError as err:
            self.app.call_from_thread(self.notify, escape(str(err)), severity="error")
            return
        # Drawn with whatever hop and node are current by then.
        self.app.call_from_thread(self._rendered, node)

    def _rendered(self, node: str) -> None:
        if self.node == node:
            self._draw()
