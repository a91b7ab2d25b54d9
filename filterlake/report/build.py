"""`build_report`: write OUT/index.html, OUT/summary.md, the PNG figures and OUT/tables/*.csv of one analysis
(it reads the analysis and its stored tables; it runs none)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filterlake import __version__
from filterlake.derived.analyze import Analysis
from filterlake.errors import FilterlakeError
from filterlake.report.collect import collect
from filterlake.report.document import Page, render_html, render_markdown
from filterlake.report.facts import ReportData
from filterlake.report.sections import render_sections
from filterlake.report.sections.medical import verdict

TITLE = "filterlake report: trained 3x3 convolution filters"
# In OUT: the files the last report wrote there, the only ones a new report removes.
MANIFEST = ".filterlake-report.json"


@dataclass
class Report:
    """What was written, plus the key numbers for a one-screen summary."""

    index: Path
    summary: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def build_report(
    analysis: Analysis,
    out: Path,
    group_by: Sequence[str] = ("domain",),
    *,
    on_section: Callable[[str], None] | None = None,
) -> Report:
    """Write the report of ``analysis`` into ``out``, with a shift heatmap per grouping of ``group_by``.

    Everything is read through one connection on the analysis's snapshot of models; the analysis must hold
    the shifts of ``group_by`` (those it could label), of `medical` and of `model`, and its comparisons.
    """
    start = time.perf_counter()
    out = check_out(Path(out))
    data = collect(analysis, analysis.connect(), tuple(dict.fromkeys(group_by or ("domain",))))
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    page = Page(out)
    sections = render_sections(data, page, on_section)
    meta = meta_lines(data)
    index = out / "index.html"
    index.write_text(render_html(TITLE, meta, sections), encoding="utf-8")
    summary = out / "summary.md"
    summary.write_text(render_markdown(TITLE, meta, sections), encoding="utf-8")
    csvs = [t.write_csv(out / "tables") for t in page.tables]
    _write_manifest(out, [index, summary, *page.figures, *csvs])
    return Report(index, summary, page.figures, csvs, key_numbers(data), time.perf_counter() - start)


def check_out(out: Path) -> Path:
    """``out`` when it is (or can become) a folder; FilterlakeError naming it when it or a parent is a file."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise FilterlakeError(
                    f"--out {out}: {folder} is a file, not a folder; give a folder for the report"
                )
            break
    return out


def _written(out: Path) -> list[Path]:
    """The files the last report listed in OUT's manifest (none without a readable manifest)."""
    try:
        listed = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    names = [Path(n) for n in listed if isinstance(n, str)]
    return [out / n for n in names if not n.is_absolute() and ".." not in n.parts and n.parts]


def _clean(out: Path) -> None:
    """Remove exactly the files the last report in OUT wrote (its manifest's list; nothing without one)."""
    for old in _written(out):
        if old.is_file() or old.is_symlink():
            old.unlink()


def _write_manifest(out: Path, files: list[Path]) -> None:
    """Record the files this report wrote in OUT (replacing the manifest atomically)."""
    part = out / f"{MANIFEST}.part"
    names = [p.relative_to(out).as_posix() for p in files]
    part.write_text(
        json.dumps({"filterlake": __version__, "files": names}, indent=1) + "\n", encoding="utf-8"
    )
    os.replace(part, out / MANIFEST)


def meta_lines(data: ReportData) -> list[str]:
    """The page header: the lake, the basis and preset, and what the analysis computed or reused."""
    a = data.analysis
    spec, basis = a.spec, a.basis
    return [
        f"Lake {a.lake.resolve()} · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · filterlake {__version__}",
        (
            f"{len(data.models)} models · basis {a.basis_id} fitted on N = {basis.n:,} filters · "
            f"preset {a.preset.name}: {spec.bins} bins over ({spec.lo:g}, {spec.hi:g}), "
            f"{a.preset.weights} component weights, {spec.subset} filters"
        ),
        (
            f"Analysis: layer statistics {a.stats.get('computed', 0)} models computed / "
            f"{a.stats.get('reused', 0)} reused; histograms {a.histograms.get('computed', 0)} "
            f"computed / {a.histograms.get('reused', 0)} reused"
        ),
    ]


def key_numbers(data: ReportData) -> dict[str, Any]:
    """The numbers `filterlake report` prints: counts, basis, the medical test, degenerated layers."""
    basis = data.analysis.basis
    numbers: dict[str, Any] = {
        "models": len(data.models),
        "layers": sum(m.n_layers for m in data.models),
        "filters": sum(m.n_filters for m in data.models),
        "basis_n": basis.n,
        "evr": basis.evr.tolist(),
    }
    domain = data.shifts.get("domain")
    if domain is not None and len(domain.labels) > 1:
        numbers["domain_shift_max"] = domain.spread()[1]
    m = data.medical
    if m.test is not None:
        numbers.update(
            medical_shift=m.stored,
            medical_p=m.test.p_value,
            medical_ci=(m.test.ci_low, m.test.ci_high),
            medical_models=len(m.medical),
            other_models=len(m.other),
            verdict=verdict(m)[0],
        )
    if data.quality is not None:
        numbers["degenerated_layers"] = data.quality.n_degenerated
        numbers["binary_like_layers"] = len(data.quality.passing)
    return numbers
