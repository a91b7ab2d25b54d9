"""Trained-like weights: 3x3 filters resampled from the corpus pool, rescaled, noisy; others from inits."""

from __future__ import annotations

import math

import numpy as np

from bench.synthetic.graph import Net
from bench.synthetic.plan import DOMAINS, ModelSpec
from bench.synthetic.pool import Pool

NOISE = 0.05  # Gaussian noise added to drawn filters, relative to the layer's target std
DEGENERATE_SHARE = 0.03  # share of 3x3 layers with part of their filters zeroed


class Sampler:
    """Draws trained-like 3x3 layers from the corpus pool of a domain, and other weights from their inits."""

    def __init__(self, pool: Pool) -> None:
        """Keep the pool and the std of each of its layers (the rescaling divides by it)."""
        self.pool = pool
        self.std = {
            g: [[float(a.std()) or 1.0 for a in layers] for layers in models] for g, models in pool.items()
        }

    @classmethod
    def of(cls, pool: Pool) -> Sampler:
        """The sampler of a pool, made once per pool object (its layer stds are computed once)."""
        cached = _SAMPLERS.get(id(pool))
        if cached is None or cached.pool is not pool:
            cached = _SAMPLERS[id(pool)] = cls(pool)
        return cached

    def filters(
        self, rng: np.random.Generator, group: str, depth: float, c_out: int, c_in: int
    ) -> np.ndarray:
        """A (c_out, c_in, 3, 3) layer drawn from a corpus layer of the same relative depth, He-scaled."""
        models = self.pool.get(group) or self.pool["natural"]
        g = group if group in self.pool else "natural"
        m = int(rng.integers(len(models)))
        layers = models[m]
        li = int(np.clip(round(depth * (len(layers) - 1)) + rng.integers(-1, 2), 0, len(layers) - 1))
        source = layers[li]
        n = c_out * c_in
        drawn = source[rng.integers(0, len(source), n)]
        target = math.sqrt(2.0 / (c_in * 9)) * math.exp(0.25 * rng.standard_normal())
        drawn *= np.float32(target / self.std[g][m][li])
        drawn += rng.standard_normal(drawn.shape, dtype=np.float32) * np.float32(NOISE * target)
        if rng.random() < DEGENERATE_SHARE:
            drawn[rng.random(n) < rng.uniform(0.2, 0.8)] = 0.0
        return drawn.reshape(c_out, c_in, 3, 3)

    def values(self, net: Net, spec: ModelSpec) -> dict[str, np.ndarray]:
        """All parameters of a model, in definition order."""
        rng = np.random.default_rng(spec.seed)
        group = DOMAINS[spec.domain][0]
        n3 = max(net.n_layers - 1, 1)
        i3 = 0
        out: dict[str, np.ndarray] = {}
        for p in net.params:
            if p.init == "filters3x3":
                out[p.name] = self.filters(rng, group, i3 / n3, p.shape[0], p.shape[1])
                i3 += 1
            elif p.init in ("he", "linear"):
                gain = 2.0 if p.init == "he" else 1.0
                out[p.name] = rng.standard_normal(p.shape, dtype=np.float32) * np.float32(
                    math.sqrt(gain / p.fan_in)
                )
            elif p.init == "bn_weight":
                out[p.name] = (1 + 0.1 * rng.standard_normal(p.shape)).astype(np.float32)
            elif p.init == "bn_var":
                out[p.name] = (1 + 0.3 * np.abs(rng.standard_normal(p.shape))).astype(np.float32)
            elif p.init == "count":
                out[p.name] = np.array(int(rng.integers(10_000, 1_000_000)), np.int64)
            else:  # bn_bias, bn_mean, bias
                out[p.name] = (0.05 * rng.standard_normal(p.shape)).astype(np.float32)
        return out


_SAMPLERS: dict[int, Sampler] = {}
