"""The printed report of a run: machine line, per-scale tables, regroup line, targets and extrapolation."""

from __future__ import annotations

from typing import Any


def _fmt_rate(v: float) -> str:
    """Filters per second in millions."""
    return f"{v / 1e6:.2f}M"


def _grid(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """A right-aligned text table with a dashed rule under its head."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def fmt(row: tuple[str, ...]) -> str:
        """One row, each cell right-aligned to its column."""
        return "  ".join(c.rjust(w) for c, w in zip(row, widths))

    return [fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, rows)]


def _machine_line(results: dict[str, Any]) -> str:
    """Date, name, machine, versions, commit and load average of the run."""
    m = results["machine"]
    return (
        f"filterlake benchmark {results['date']} | {results['name']} | {m['nproc']} cores ({m['cpu']}), "
        f"{m['memory_gb']} GB | Python {m['python']}, DuckDB {m['duckdb']}, pyarrow {m['pyarrow']}, "
        f"numpy {m['numpy']}, torch {m['torch']} | commit {m['git_commit']} | load average "
        f"{m['load_average'][0]:.1f} -> {m.get('load_average_end', [0])[0]:.1f}"
    )


def _throughput_rows(scales: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Per scale: sizes, stage and limit seconds, rates and ratios."""
    rows = []
    for s in scales:
        mt, st = s["metrics"], s["stages"]
        rows.append((
            f"x{s['scale']}", f"{mt['filters']:,}", str(mt["models"]), f"{mt['checkpoint_mb']:.0f}",
            f"{st['ingest']['seconds']:.2f}", _fmt_rate(mt["ingest_filters_per_s"]),
            f"{mt['ingest_mb_per_s']:.0f}", f"{st['limit_ingest']['seconds']:.2f}",
            f"{mt['ingest_ratio']:.0%}", f"{st['analysis']['seconds']:.2f}",
            f"{st['limit_scan']['seconds']:.2f}", f"{mt['analysis_ratio']:.1f}x",
            f"{st['regroup_all']['seconds']:.2f} ({st['regroup_all']['groups']})",
        ))  # fmt: skip
    return rows


def _cost_rows(scales: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Per scale: seconds per million filters and every stage's peak RSS."""
    rows = []
    for s in scales:
        mt, st = s["metrics"], s["stages"]
        rows.append((
            f"x{s['scale']}", f"{mt['ingest_s_per_mfilter']:.3f}", f"{mt['limit_ingest_s_per_mfilter']:.3f}",
            f"{mt['analysis_s_per_mfilter']:.3f}", f"{mt['scan_s_per_mfilter']:.3f}",
            *(f"{st[k]['peak_rss_mb']:.0f}" for k in ("ingest", "limit_ingest", "analysis", "limit_scan",
                                                       "regroup_all")),
        ))  # fmt: skip
    return rows


def _peer_rows(scales: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Per scale: the JIT cost, the analysis and its frozen-basis variant, and the two peers."""
    rows = []
    for s in scales:
        mt, st = s["metrics"], s["stages"]
        nb, tcq = st["peer_notebook"], st["peer_tcq"]
        rows.append((
            f"x{s['scale']}", f"{mt['jit_s']:.2f}", f"{st['analysis']['seconds']:.2f}",
            f"{st['analysis']['core_s']:.2f}", f"{st['analysis_frozen']['seconds']:.2f}",
            f"{mt['frozen_ratio']:.1f}x",
            "does not fit" if nb.get("skipped") else f"{nb['seconds']:.2f}",
            "-" if mt["notebook_ratio"] is None else f"{mt['notebook_ratio']:.2f}x",
            f"{tcq['seconds']:.2f} ({tcq['filters']:,})",
            "-" if mt["tcq_ratio"] is None else f"{mt['tcq_ratio']:.3f}x",
        ))  # fmt: skip
    return rows


def _regroup_line(r: dict[str, Any]) -> str:
    """The regroup zoo's sizes, ingest and analysis, and the regrouping itself."""
    return (
        f"regroup zoo: {r['zoo']['n_models']:,} models, {r['zoo']['n_filters']:,} filters: ingest "
        f"{r['ingest']['seconds']:.1f} s, analysis {r['analysis']['seconds']:.1f} s (peak RSS "
        f"{r['analysis']['peak_rss_mb']:.0f} MB); regroup by name {r['regroup']['seconds']:.2f} s "
        f"(views {r['regroup']['open_views_s']:.2f} s), peak RSS {r['regroup']['peak_rss_mb']:.0f} MB, "
        f"filters visible: {r['regroup']['filters_visible_during_stage']}; report {r['report']['seconds']:.1f} s "
        f"(page {r['report']['page_bytes'] / 1e6:.1f} MB)"
    )


def _extrapolation_lines(e: dict[str, Any]) -> list[str]:
    """The hours CNN Filter DB would take per stage and limit, and the sizes behind them."""
    lines = [
        (
            f"extrapolation to CNN Filter DB ({e['filters'] / 1e9:.2f} billion filters) on this machine: "
            f"1.46e9 x the cost per filter measured at {e['basis']}, linear as the flatness targets check:"
        )
    ]
    for stage, name in (
        ("ingest", "ingest"),
        ("limit_ingest", "  bare read+write limit"),
        ("analysis", "analysis"),
        ("scan", "  bare DuckDB scan"),
    ):
        lines.append(f"  {name:<24} {e[f'{stage}_hours']:6.2f} h ({e[f'{stage}_hours'] * 60:.0f} min)")
    lines.append(
        f"  (checkpoints ~{e['checkpoint_gb']:.0f} GB and a lake of ~{e['lake_gb']:.0f} GB of filters at "
        "this zoo's bytes per filter: more than the page cache, so reading and writing them at the disk's "
        "speed is a floor under these times; regrouping reads only histograms and stays at the regroup time "
        "above)"
    )
    return lines


def table(results: dict[str, Any]) -> str:
    """The whole printed report (also written beside the JSON as .txt)."""
    head = ("scale", "filters", "models", "ckpt MB", "ingest s", "filt/s", "MB/s", "limit s", "ingest/limit",
            "analysis s", "scan s", "analysis/scan", "regroup-all s")  # fmt: skip
    lines = [_machine_line(results), "", *_grid(head, _throughput_rows(results["scales"])), ""]
    head = ("scale", "s/Mfilter: ingest", "limit", "analysis", "scan", "peak RSS MB: ingest", "limit",
            "analysis", "scan", "regroup-all")  # fmt: skip
    lines += _grid(head, _cost_rows(results["scales"]))
    head = ("scale", "JIT s", "analysis s", "to shifts s", "frozen basis s", "frozen/scan", "notebook s",
            "filterlake/notebook", "tcq s (filters)", "filterlake/tcq per filter")  # fmt: skip
    lines += ["", *_grid(head, _peer_rows(results["scales"]))]
    if results.get("regroup"):
        lines += ["", _regroup_line(results["regroup"])]
    lines += ["", "targets:"]
    width = max(len(t["target"]) for t in results["targets"])
    for t in results["targets"]:
        lines.append(f"  {t['status']:<8} {t['target']:<{width}}  {t['value']:>8}  ({t['detail']})")
    return "\n".join([*lines, "", *_extrapolation_lines(results["extrapolation"])])
