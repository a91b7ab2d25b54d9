"""Small text helpers of the report: shortened labels, file-name slugs, numbers written with a true minus."""

from __future__ import annotations

import re


def short(text: str, width: int = 34) -> str:
    """Shortened to ``width`` characters with an ellipsis in the middle, keeping the distinctive ends."""
    if len(text) <= width:
        return text
    tail = max(width // 3, 1)
    return text[: width - tail - 1].rstrip() + "…" + text[-tail:].lstrip()


def slug(text: str) -> str:
    """A file-name-safe lower-case form of a label ("Ultra-Light" -> "ultra_light")."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def interval(lo: float, hi: float) -> str:
    """An open interval as prose writes it, with the minus sign: (−3, 3)."""
    return f"({lo:g}, {hi:g})".replace("-", "−")


def percent(share: float) -> str:
    """A share as a percentage without needless digits: 0.01 -> "1%", 0.005 -> "0.5%"."""
    return f"{share * 100:.6g}%"


def counted(counts: dict[str, int], separator: str = " ") -> str:
    """Counts as "a 3, b 1", most frequent first (ties by name)."""
    return ", ".join(f"{k}{separator}{v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
