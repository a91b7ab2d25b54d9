"""The targets of a run, judged PASS / NOT MET at the largest scale; the extrapolation to CNN Filter DB."""

from __future__ import annotations

from typing import Any

CNN_FILTER_DB_FILTERS = 1_460_000_000
TARGETS = {
    "ingest_ratio": 0.5,
    "analysis_ratio": 3.0,
    "frozen_ratio": 2.0,
    "analysis_rss_mb": 2048,
    "flat": 0.2,
    "regroup_s": 2.0,
    "views_s": 0.3,  # opening the DuckDB views of the regroup zoo (1,000 models in `make bench`)
    "report_s": 30.0,  # `filterlake report` of the regroup zoo: "well under a minute" at 1,000 models
    "peer_ratio": 1.0,
}


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its status, its measured value and the numbers behind it."""
    scales = results["scales"]
    top = scales[-1]["metrics"]
    top_stages = scales[-1]["stages"]
    targets = []

    def add(name: str, ok: bool, value: str, detail: str) -> None:
        """Record one target with its status."""
        targets.append(
            {"target": name, "status": "PASS" if ok else "NOT MET", "value": value, "detail": detail}
        )

    add(
        "ingest >= 50% of the bare read-and-write limit",
        top["ingest_ratio"] >= TARGETS["ingest_ratio"],
        f"{top['ingest_ratio']:.0%}",
        f"at x{scales[-1]['scale']}: {top['ingest_filters_per_s'] / 1e6:.2f}M vs "
        f"{top['limit_filters_per_s'] / 1e6:.2f}M filters/s; ingest in "
        f"{top_stages['ingest'].get('workers', 1)} worker processes, the limit in one",
    )
    add(
        "analysis of the largest lake <= 3x the bare DuckDB scan",
        top["analysis_ratio"] <= TARGETS["analysis_ratio"],
        f"{top['analysis_ratio']:.1f}x",
        f"{top_stages['analysis']['seconds']:.1f} s vs {top_stages['limit_scan']['seconds']:.2f} s",
    )
    add(
        "analysis with a frozen basis (one read) <= 2x the bare DuckDB scan",
        top["frozen_ratio"] <= TARGETS["frozen_ratio"],
        f"{top['frozen_ratio']:.1f}x",
        f"{top_stages['analysis_frozen']['seconds']:.1f} s vs {top_stages['limit_scan']['seconds']:.2f} s",
    )
    _peer_targets(scales, add)
    rss = top_stages["analysis"]["peak_rss_mb"]
    add(
        "analysis peak RSS <= 2 GB",
        rss <= TARGETS["analysis_rss_mb"],
        f"{rss:.0f} MB",
        f"at x{scales[-1]['scale']} ({top['filters']:,} filters)",
    )
    if len(scales) >= 2:
        a, b = scales[-2], scales[-1]
        for stage in ("ingest", "analysis"):
            ca, cb = a["metrics"][f"{stage}_s_per_mfilter"], b["metrics"][f"{stage}_s_per_mfilter"]
            change = cb / ca - 1
            add(
                f"{stage} cost per filter flat x{a['scale']} -> x{b['scale']} (within 20%)",
                abs(change) <= TARGETS["flat"],
                f"{change:+.0%}",
                f"{ca:.3f} -> {cb:.3f} s per million filters",
            )
    if results.get("regroup"):
        reg = results["regroup"]["regroup"]
        add(
            f"regrouping {reg['groups']:,} models < 2 s (no filters read)",
            reg["seconds"] < TARGETS["regroup_s"] and reg["filters_visible_during_stage"] == 0,
            f"{reg['seconds']:.2f} s",
            f"grouped_counts + shift_table, {reg['groups']}x{reg['groups']} matrix, "
            f"LAKE/filters moved away; opening the DuckDB views first adds {reg['open_views_s']:.2f} s",
        )
        add(
            f"opening the DuckDB views of {reg['groups']:,} models <= {TARGETS['views_s']} s",
            reg["open_views_s"] <= TARGETS["views_s"],
            f"{reg['open_views_s']:.2f} s",
            "lake/duck.connect: views created WITH (DEFER_BINDING), per-model files compacted",
        )
        report = results["regroup"]["report"]
        add(
            f"report of {reg['groups']:,} models < {TARGETS['report_s']:.0f} s",
            report["seconds"] < TARGETS["report_s"],
            f"{report['seconds']:.1f} s",
            f"filterlake report on the analysed zoo (its groupings, then the page: "
            f"{report['page_bytes'] / 1e6:.1f} MB, {report['figures']} figures)",
        )
    return targets


def _peer_targets(scales: list[dict[str, Any]], add: Any) -> None:
    """filterlake faster than each peer at every scale where the peer fits in memory (ratios < 1)."""
    fitting = [s for s in scales if s["metrics"]["notebook_ratio"] is not None]
    beyond = [s for s in scales if s["metrics"]["notebook_ratio"] is None]
    where = "; ".join(
        f"does not fit at x{s['scale']}: needs ~{s['stages']['peer_notebook']['fit']['need_gb']:.1f} GB of "
        f"{s['stages']['peer_notebook']['fit']['available_gb']:.1f} GB available"
        for s in beyond
    )
    ratios = ", ".join(f"x{s['scale']} {s['metrics']['notebook_ratio']:.2f}" for s in fitting)
    add(
        "analysis faster than CNN Filter DB's notebook path wherever it fits",
        bool(fitting) and all(s["metrics"]["notebook_ratio"] < TARGETS["peer_ratio"] for s in fitting),
        f"{fitting[-1]['metrics']['notebook_ratio']:.2f}x" if fitting else "n/a",
        f"filterlake up to the stored shifts / notebook: {ratios or 'fits nowhere'}"
        + (f"; {where}" if where else ""),
    )
    ratios = ", ".join(f"x{s['scale']} {s['metrics']['tcq_ratio']:.3f}" for s in scales)
    add(
        "layer statistics faster than torchconvquality.measure_quality",
        all(s["metrics"]["tcq_ratio"] < TARGETS["peer_ratio"] for s in scales),
        f"{scales[-1]['metrics']['tcq_ratio']:.3f}x",
        f"filterlake's layer statistics / measure_quality, per filter: {ratios}",
    )


def extrapolate(results: dict[str, Any]) -> dict[str, Any]:
    """CNN Filter DB size from the per-filter costs at the largest scale (linear; see the flatness target)."""
    top = results["scales"][-1]["metrics"]
    n = CNN_FILTER_DB_FILTERS
    out = {"filters": n, "basis": f"x{results['scales'][-1]['scale']} ({top['filters']:,} filters)"}
    for stage in ("ingest", "analysis", "limit_ingest", "scan"):
        out[f"{stage}_hours"] = top[f"{stage}_s_per_mfilter"] * n / 1e6 / 3600
    out["lake_gb"] = top["lake_bytes_per_filter"] * n / 1e9
    out["checkpoint_gb"] = top["checkpoint_mb"] * 1e6 / top["filters"] * n / 1e9
    return out
