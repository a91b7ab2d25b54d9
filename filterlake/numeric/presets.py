"""Named shift settings of the papers: bins, histogram range, component weights and filter subset (methods §5, §9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # numpy is imported where weights are made: the command-line parser reads PRESETS
    import numpy as np

    from filterlake.numeric.basis import Basis


@dataclass(frozen=True)
class Preset:
    """Histogram bins, range (None = global min/max of all coefficients), weights ("uniform" or "evr"), subset."""

    name: str
    bins: int = 70
    range: tuple[float, float] | None = None
    weights: Literal["uniform", "evr"] = "evr"
    exclude_sparse: bool = False

    def __post_init__(self) -> None:
        if self.weights not in ("uniform", "evr"):
            raise ValueError(f"weights must be 'uniform' or 'evr', got {self.weights!r}")
        if self.bins < 1:
            raise ValueError(f"bins must be positive, got {self.bins}")

    def weights_for(self, basis: Basis) -> np.ndarray:
        """Component weights w_k of D: 1/9 each (uniform) or the basis' explained-variance ratios (evr)."""
        import numpy as np

        return np.full(9, 1 / 9) if self.weights == "uniform" else np.array(basis.evr, dtype=np.float64)

    def range_for(self, data_min: float, data_max: float) -> tuple[float, float]:
        """The histogram range: the fixed ``range`` if set, else the global coefficient (min, max) given."""
        return self.range if self.range is not None else (float(data_min), float(data_max))


PRESETS: dict[str, Preset] = {
    "medical": Preset("medical", 70, (-3.0, 3.0), "uniform", False),
    "cnn-filter-db": Preset("cnn-filter-db", 70, None, "evr", False),
}
