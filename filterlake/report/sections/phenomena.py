"""The papers' phenomena, found automatically (derived/phenomena.py): spikey models and the layers filling their
peak, near-totally sparse models, binary-like layers, and the frequency content of the filters per domain."""

from __future__ import annotations

from filterlake.derived.phenomena import (
    BINARY_LIKE,
    NEAR_TOTAL_KEPT,
    NEAR_TOTAL_SPARSITY,
    RESPONSIBLE_ENRICHMENT,
    SPIKEY,
    SPIKEY_LAYER,
)
from filterlake.numeric.dct import LOW_CUTOFF
from filterlake.numeric.spikiness import SPIKY_THRESHOLD
from filterlake.report.document import Page, Para, Section
from filterlake.report.facts import ReportData
from filterlake.report.tables import Table
from filterlake.report.text import percent, plural

ID, TITLE = "phenomena", "The papers' phenomena, found automatically"
GUIDE = (
    "What the papers found by looking at plots, searched for in every model: spikey coefficient "
    "distributions, near-total sparsity, binary-like layers, and how much of the filters' energy is in "
    "high spatial frequencies."
)


def _of(data: ReportData, kind: str) -> list[dict]:
    return [r for r in data.phenomena if r["phenomenon"] == kind]


def _spikey(data: ReportData, page: Page) -> list:
    spikey, layers = _of(data, SPIKEY), _of(data, SPIKEY_LAYER)
    text = (
        f"A model is spikey when its summed histogram of some basis component peaks at least {SPIKY_THRESHOLD:g} "
        "times as high as a Gaussian of the same variance (S = peak density x sigma x sqrt(2 pi), 1 for a "
        "Gaussian; docs/methods/spikiness.md), on the fine histograms of the density plots. Within a spikey "
        f"model, a layer fills the peak when its share of the peak is at least {RESPONSIBLE_ENRICHMENT:g} times "
        "its share of the model's filters. "
    )
    if not spikey:
        return [Para(text + "No model is spikey.")]
    blocks: list = [Para(text + f"Spikey: {plural(len(spikey), 'model')}.")]
    responsible: dict[str, list[str]] = {}
    for r in layers:
        responsible.setdefault(r["model"], []).append(f"{r['layer_name']} ({r['score']:.2g}x)")
    blocks.append(
        page.table(
            Table(
                "spikey_models",
                "Spikey models, the most spikey first",
                ["model", "domain", "component", "S", "layers filling the peak"],
                [
                    [
                        r["model"],
                        r["domain"],
                        f"c{r['component']}",
                        r["score"],
                        "; ".join(responsible.get(r["model"], [])),
                    ]
                    for r in spikey
                ],
                "S of the model's most spikey component; a layer's factor is its share of the peak over its share "
                "of the filters. From the phenomena view.",
                {"S": ".3g"},
            )
        )
    )
    return blocks


def _sparse(data: ReportData, page: Page) -> list:
    rows = _of(data, NEAR_TOTAL_SPARSITY)
    text = (
        f"Near-total sparsity: models where structured pruning would keep under {percent(NEAR_TOTAL_KEPT)} of the "
        "3x3 filters (P3's ResNet-50 keeps about 1%). "
    )
    if not rows:
        return [Para(text + "No model is.")]
    return [
        Para(text + f"Nearly emptied: {plural(len(rows), 'model')}."),
        page.table(
            Table(
                "near_total_sparsity",
                "Models that structured pruning would nearly empty",
                ["model", "domain", "kept share", "detail"],
                [
                    [r["model"], r["domain"], r["score"], r["detail"]]
                    for r in sorted(rows, key=lambda r: r["score"])
                ],
                "",
                {"kept share": ".4f"},
            )
        ),
    ]


def _binary(data: ReportData) -> list:
    rows = _of(data, BINARY_LIKE)
    models = sorted({r["model"] for r in rows})
    if not rows:
        return [
            Para("Binary-like layers: none (the scores and the most binary-like layers are in section 6).")
        ]
    return [
        Para(
            f"Binary-like layers: {plural(len(rows), 'layer')} in {plural(len(models), 'model')} "
            f"({', '.join(models)}); section 6 draws their filters."
        )
    ]


def _frequency(data: ReportData, page: Page) -> list:
    if not data.frequency:
        return []
    return [
        Para("Frequency content", "heading"),
        Para(
            "Each layer's energy of its max-abs scaled filters in the orthonormal 2-D DCT-II basis, computed "
            f"exactly from the stored moments: low = the DC and the two gradients (u + v <= {LOW_CUTOFF}), high = "
            "the other six coefficients (docs/methods/dct.md). The share is energy-weighted over the domain's "
            "layers; per layer it is in the layer_frequency view."
        ),
        page.table(
            Table(
                "frequency_by_domain",
                "High-frequency share of the filters' energy per domain",
                ["domain", "models", "layers", "high-frequency share"],
                [[r["domain"], r["models"], r["layers"], r["high_share"]] for r in data.frequency],
                "",
                {"high-frequency share": ".3f"},
            )
        ),
    ]


def _baselines(data: ReportData, page: Page) -> list:
    heading = Para("Against the same architecture before training", "heading")
    text = (
        "Each layer of a trained model is compared with the same layer (same position among the 3x3 layers, same "
        "shape) of the untrained baselines of its family (`filterlake baseline`), read in the same basis: D is "
        "what training moved that layer's filter distribution (the baseline_shifts view, per layer). "
    )
    if not data.baselines:
        return [heading, Para(text + "No trained model has a matching baseline in this lake.")]
    return [
        heading,
        Para(text),
        page.table(
            Table(
                "baseline_shifts_by_model",
                "Trained models against their untrained baseline, the most changed first",
                [
                    "model",
                    "domain",
                    "baseline",
                    "matched layers",
                    "3x3 layers",
                    "median D",
                    "max D",
                    "most changed layer",
                ],
                [
                    [
                        r["model"],
                        r["domain"],
                        r["baseline_architecture"],
                        r["layers"],
                        r["of_layers"],
                        r["median_shift"],
                        r["max_shift"],
                        r["most_changed"],
                    ]
                    for r in data.baselines
                ],
                "D in nats, on the analysis's histogram spec and weights; the baseline's seeds are pooled.",
                {"median D": ".4f", "max D": ".4f"},
            )
        ),
    ]


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: each phenomenon, where it was found, or that it was not."""
    s.add(*_spikey(data, page), *_sparse(data, page), *_binary(data), *_frequency(data, page))
    s.add(*_baselines(data, page))
