"""Small text helpers of the report: shortened or wrapped labels, file-name slugs, numbers written with a true
minus, and where conv depths come from."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Iterable

from filterlake.vocab import DEPTH_CHANNEL_CHAIN, DEPTH_DEFINITION_ORDER, DEPTH_GRAPH

# How each models.depth_source says a model's conv depth was found (the last two are inferred for state dicts).
DEPTH_SOURCES = {
    DEPTH_GRAPH: "from the graph (ONNX levels)",
    DEPTH_CHANNEL_CHAIN: "inferred from the chain of matching channel counts",
    DEPTH_DEFINITION_ORDER: "inferred from the order the layers are defined in",
}


def short(text: str, width: int = 34) -> str:
    """Shortened to ``width`` characters with an ellipsis in the middle, keeping the distinctive ends."""
    if len(text) <= width:
        return text
    tail = max(width // 3, 1)
    return text[: width - tail - 1].rstrip() + "…" + text[-tail:].lstrip()


def fit(text: str, width: int = 34, lines: int = 1) -> str:
    """A figure label in at most ``lines`` lines of ``width`` characters, the last one ``short``-ened if need be."""
    if len(text) <= width or lines <= 1:
        return short(text, width)
    wrapped = textwrap.wrap(text, width)
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    return "\n".join([*wrapped[: lines - 1], short(" ".join(wrapped[lines - 1 :]), width)])


def slug(text: str) -> str:
    """A file-name-safe lower-case form of a label ("Ultra-Light" -> "ultra_light")."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def interval(lo: float, hi: float) -> str:
    """An open interval as prose writes it, with the minus sign: (−3, 3)."""
    return f"({lo:g}, {hi:g})".replace("-", "−")


def percent(share: float) -> str:
    """A share as a percentage without needless digits: 0.01 -> "1%", 0.005 -> "0.5%"."""
    return f"{share * 100:.6g}%"


def plural(n: int, word: str) -> str:
    """A count with its noun: "1 set", "2 sets"."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def counted(counts: dict[str, int], separator: str = " ") -> str:
    """Counts as "a 3, b 1", most frequent first (ties by name)."""
    return ", ".join(f"{k}{separator}{v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def depth_sources(sources: Iterable[str | None]) -> str:
    """Where the conv depths of these models come from, counted ("Conv depth of the 3 models: 2 ..., 1 ...")."""
    counts = Counter(sources)
    described = {**DEPTH_SOURCES, None: "with no recorded depth source"}
    parts = [
        f"{n} {described.get(s, f'by {s}')}"
        for s, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or ""))
    ]
    guessed = counts[DEPTH_CHANNEL_CHAIN] + counts[DEPTH_DEFINITION_ORDER]
    tail = (
        f"; the {guessed} inferred depths are a guess" if guessed > 1 else "; the inferred depth is a guess"
    )
    return f"Conv depth of the {sum(counts.values())} models: {', '.join(parts)}{tail if guessed else ''}."
