"""What every mode's explanations share: how a hop's sentence is put."""

from __future__ import annotations

__all__ = ["capitalised"]


def capitalised(sentence: str) -> str:
    """`sentence` with a capital, unless it starts with a name (`cali-PREROUTING #1 …`)."""
    first = sentence.split(" ", 1)[0]
    return sentence[0].upper() + sentence[1:] if first.isalpha() and first.islower() else sentence
