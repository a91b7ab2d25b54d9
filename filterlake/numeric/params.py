"""The layer-quality parameters, in one place: the numeric functions, the CLI defaults, the stored fingerprint
and the report's prose all read this one dataclass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from fractions import Fraction
from typing import Any, Literal

from filterlake.errors import ParameterError

SparsityRule = Literal["abs-strict", "p2-le", "p3-signed"]
SPARSITY_RULES: tuple[str, ...] = ("abs-strict", "p2-le", "p3-signed")


@dataclass(frozen=True)
class QualityParams:
    """Parameters of the per-layer metrics (methods.md §6); the defaults are the papers'.

    eps, rule, zero_layer_value: sparsity (a filter is sparse when every |w| < eps * the layer's max |w|, for
    rule "abs-strict"; an all-zero layer counts as fully sparse when zero_layer_value is 1.0).
    entropy_margin, low_entropy, sparsity_threshold: P1's degeneration rule.
    tol, binary_threshold: binary-likeness (values within tol of -1, 0, +1; a layer is binary-like at a score
    of at least binary_threshold). level_resolution: the rounding step of the distinct-level count.
    """

    eps: float = 0.01
    rule: SparsityRule = "abs-strict"
    zero_layer_value: float = 1.0
    entropy_margin: float = 0.02
    low_entropy: float = 0.5
    sparsity_threshold: float = 0.14
    tol: float = 0.05
    binary_threshold: float = 0.9
    level_resolution: float = 1 / 64

    def __post_init__(self) -> None:
        if not 0 < self.eps < 1:
            raise ParameterError(f"eps must lie in (0, 1), got {self.eps}")
        if self.rule not in SPARSITY_RULES:
            raise ParameterError(f"rule must be one of {SPARSITY_RULES}, got {self.rule!r}")
        if self.zero_layer_value not in (0.0, 1.0):
            raise ParameterError(f"zero_layer_value must be 0.0 or 1.0, got {self.zero_layer_value}")
        if not 0 < self.tol < 0.5:
            raise ParameterError(f"tol must lie in (0, 0.5), got {self.tol}")
        if not 0 < self.level_resolution <= 1:
            raise ParameterError(f"level_resolution must lie in (0, 1], got {self.level_resolution}")

    def with_(self, **changes: Any) -> QualityParams:
        """A copy with some parameters changed (None values are ignored, as unset CLI options)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        """A short stable id of the parameters, stored with every layer_stats row (a change recomputes them).

        The level resolution joins the hashed set only when it differs from its default, so that lakes analysed
        before it became a parameter keep their statistics.
        """
        values = self.as_dict()
        if values["level_resolution"] == QualityParams.level_resolution:
            del values["level_resolution"]
        return fingerprint(values)

    @property
    def level_resolution_text(self) -> str:
        """The level resolution as a fraction where it is one (1/64), else as a number."""
        frac = Fraction(self.level_resolution).limit_denominator(4096)
        return (
            f"{frac.numerator}/{frac.denominator}"
            if float(frac) == self.level_resolution
            else f"{self.level_resolution:g}"
        )


PARAM_NAMES = tuple(f.name for f in fields(QualityParams))


def fingerprint(values: dict[str, Any]) -> str:
    """A short stable id of a parameter set (stored with results; a change triggers recomputation)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


PERMUTATIONS, SEED = 2000, 0  # the defaults of the medical vs non-medical permutation test

DEFAULT_QUALITY = QualityParams()  # the papers' parameters: the default of every function that takes them
