"""`lab verify`'s table: flow, kubehop, kernel, agree; then each disagreement in full."""

from __future__ import annotations

from collections.abc import Sequence

from sim.lab.verify import Check

HEADERS = ("flow", "kubehop", "kernel", "agree")
"""The table's columns."""


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(checks: Sequence[Check], *, width: int = 160) -> str:
    """The checks as an aligned text table, then the differences of the rows that disagree."""
    rows = [(c.name, c.kubehop, c.kernel, "yes" if c.agree else "NO") for c in checks]
    # The flow column gets what the others leave; none grows past its longest cell.
    caps = [56, 44, 44, 5]
    widths = [
        min(caps[i], max(len(HEADERS[i]), *(len(r[i]) for r in rows)) if rows else len(HEADERS[i]))
        for i in range(4)
    ]
    spare = width - sum(widths) - 6
    if spare > 0:
        widths[0] = min(widths[0] + spare, max((len(r[0]) for r in rows), default=4))
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(_cell(c, w).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    bad = [c for c in checks if not c.agree]
    lines.append("")
    lines.append(
        f"{len(checks) - len(bad)} of {len(checks)} checks agree"
        + (f"; {len(bad)} disagree:" if bad else ".")
    )
    for check in bad:
        lines.append(f"- {check.name}  ({check.command})")
        lines += [f"    {d}" for d in check.differences]
    return "\n".join(lines) + "\n"
