"""How iptables-save spells values it normalises, shared by the renderer's two passes."""

from __future__ import annotations

import math


def save_string(text: str) -> str:
    """xtables_save_string: always double-quoted, with `"` and `\\` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kernel_probability(text: str) -> str:
    """libxt_statistic stores lround(p * 2^31) and prints it back with %.11f."""
    fixed = math.floor(float(text) * 0x80000000 + 0.5)
    return f"{fixed / 0x80000000:.11f}"
