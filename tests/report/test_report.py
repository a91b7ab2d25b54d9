"""The report built on the corpus lake: every section is there and its numbers are the lake's numbers."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from filterlake.derived.groupings import architecture_family, task_kind
from filterlake.numeric.quality import entropy_threshold
from filterlake.report.text import short
from filterlake.report.verdict import GroupFacts, medical_verdict

SECTIONS = ("glance", "basis", "distributions", "shifts", "medical", "quality", "phenomena")


class Page(HTMLParser):
    """Sections (id -> text, first paragraph class), images and external references of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.first_para: dict[str, str | None] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.scripts_with_src: list[str] = []
        self._section: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = []
            self.first_para[self._section] = None
        elif tag == "p" and self._section and self.first_para[self._section] is None:
            self.first_para[self._section] = a.get("class", "")
        elif tag == "img":
            self.images.append(a)
        elif tag in ("a", "link"):
            self.links.append(a.get("href", ""))
        elif tag == "script" and a.get("src"):
            self.scripts_with_src.append(a["src"])

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._section:
            self.sections[self._section].append(data)

    def text(self, section: str) -> str:
        return " ".join(self.sections[section])


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def scalar(con, sql: str, params=None):
    return con.execute(sql, params or []).fetchone()[0]


# ---------------------------------------------------------------- page structure


def test_outputs_exist(built):
    out = built.out
    assert (out / "index.html").is_file() and (out / "summary.md").is_file()
    assert built.report.figures and all(
        p.parent == out and p.stat().st_size > 5000 for p in built.report.figures
    )
    assert {p.name for p in (out / "tables").glob("*.csv")} == {p.name for p in built.report.tables}


def test_every_section_has_a_reading_guide_and_content(built):
    page = parse(built.html())
    assert list(page.sections) == list(SECTIONS)
    for section in SECTIONS:
        assert page.first_para[section] == "guide", f"section {section} does not start with its reading guide"
        assert len(page.text(section)) > 300, f"section {section} is nearly empty"


def test_self_contained(built):
    html = built.html()
    page = parse(html)
    assert not page.scripts_with_src
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page references the network"
    assert "<link" not in html and "@import" not in html
    for link in page.links:
        assert link.startswith("#") or (built.out / link).is_file(), link


def test_every_image_file_exists_and_has_alt(built):
    page = parse(built.html())
    assert len(page.images) >= 8
    for img in page.images:
        assert img.get("alt"), img
        path = built.out / img["src"]
        assert path.is_file(), img["src"]
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_md_has_the_same_tables_and_figures(built):
    md = (built.out / "summary.md").read_text(encoding="utf-8")
    for section_title in (
        "The lake at a glance",
        "The basis",
        "Coefficient distributions",
        "Pairwise distribution shifts",
        "Medical vs non-medical",
        "Layer quality",
    ):
        assert section_title in md
    for csv_path in built.report.tables:
        assert f"(`tables/{csv_path.name}`)" in md
        with open(csv_path, newline="") as handle:
            header = next(csv.reader(handle))
        assert "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |" in md
    for fig in built.report.figures:
        assert f"]({fig.name})" in md


# ---------------------------------------------------------------- 1. at a glance


def test_glance_counts_match_the_lake(built):
    con = built.con()
    n_models = scalar(con, "SELECT count(*) FROM models")
    models = read_csv(built.out / "tables" / "models.csv")
    assert len(models) == n_models
    for name in ("by_domain", "by_task", "by_format", "by_architecture"):
        rows = read_csv(built.out / "tables" / f"{name}.csv")
        assert sum(int(r["models"]) for r in rows) == n_models, name
        assert sum(int(r["filters"]) for r in rows) == scalar(con, "SELECT count(*) FROM filters"), name
        assert sum(int(r["3x3 layers"]) for r in rows) == scalar(con, "SELECT count(*) FROM layers"), name
    by_domain = {r["domain"]: int(r["models"]) for r in read_csv(built.out / "tables" / "by_domain.csv")}
    assert by_domain == dict(con.execute("SELECT domain, count(*) FROM models GROUP BY domain").fetchall())
    text = parse(built.html()).text("glance")
    assert f"{n_models} models" in text


def test_skipped_layers_and_messages(built):
    con = built.con()
    rows = read_csv(built.out / "tables" / "skipped_by_reason.csv")
    assert sum(int(r["layers"]) for r in rows) == scalar(con, "SELECT sum(n) FROM skipped_layers")
    assert {r["reason"] for r in rows} == {
        r[0].removeprefix("skipped_")
        for r in con.execute("SELECT DISTINCT reason FROM skipped_layers").fetchall()
    }
    messages = read_csv(built.out / "tables" / "model_messages.csv")
    assert len(messages) == scalar(
        con, "SELECT count(*) FROM models WHERE message IS NOT NULL AND message <> ''"
    )
    assert len(messages) > 0  # the corpus holds an MLP and a 3-D CNN recorded with zero filters


# ---------------------------------------------------------------- 2. basis


def test_basis_table_is_the_stored_basis(built):
    con = built.con()
    evr, mean = con.execute("SELECT evr, mean FROM basis").fetchone()
    rows = read_csv(built.out / "tables" / "basis.csv")
    assert [r["component"] for r in rows] == ["mean μ"] + [f"v{k}" for k in range(9)]
    np.testing.assert_allclose([float(r["EVR"]) for r in rows[1:]], evr, rtol=1e-12)
    np.testing.assert_allclose([float(rows[0][c]) for c in list(rows[0])[4:]], mean, rtol=1e-12)
    components = np.array([[float(r[c]) for c in list(r)[4:]] for r in rows[1:]])
    np.testing.assert_allclose(components @ components.T, np.eye(9), atol=1e-9)
    n = scalar(con, "SELECT n FROM basis")
    assert f"N = {n:,}" in parse(built.html()).text("basis")


# ---------------------------------------------------------------- 3. distributions


def test_distribution_tables_count_every_filter(built):
    con = built.con()
    rows = read_csv(built.out / "tables" / "coefficient_spread_by_domain.csv")
    assert sum(int(r["filters"]) for r in rows) == scalar(con, "SELECT count(*) FROM filters")
    assert {"fig_kde_models.png", "fig_kde_domains.png"} <= {p.name for p in built.report.figures}
    per_model = read_csv(built.out / "tables" / "coefficient_spread_by_model.csv")
    assert len(per_model) == scalar(con, "SELECT count(DISTINCT model_id) FROM filters")


# ---------------------------------------------------------------- 4. shifts


def _matrix(path: Path) -> dict[tuple[str, str], float]:
    rows = read_csv(path)
    return {(r["group"], b): float(r[b]) for r in rows for b in list(r)[1:]}


def _stored(con, group_by: str) -> dict[tuple[str, str], float]:
    basis = scalar(con, "SELECT basis_id FROM basis")
    return {
        (a, b): d
        for a, b, d in con.execute(
            "SELECT group_a, group_b, shift FROM shifts WHERE group_by = ? AND preset = 'medical' AND "
            "basis_id = ?",
            [group_by, basis],
        ).fetchall()
    }


@pytest.mark.parametrize("group_by", ["domain", "depth_decile"])
def test_heatmap_csv_equals_the_stored_shifts(built, group_by):
    shown = _matrix(built.out / "tables" / f"shift_{group_by}.csv")
    stored = _stored(built.con(), group_by)
    assert shown.keys() == stored.keys()
    for key, value in stored.items():
        assert shown[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_domain_heatmap_sorted_by_ascending_column_mean(built):
    rows = read_csv(built.out / "tables" / "shift_domain.csv")
    matrix = np.array([[float(v) for v in list(r.values())[1:]] for r in rows])
    means = matrix.mean(axis=0)
    assert np.all(np.diff(means) >= -1e-12)


def test_family_heatmaps_cover_families_with_two_models(built):
    con = built.con()
    stored = _stored(con, "model")  # the per-model shifts (labels are the names: the corpus names are unique)
    families: dict[str, set[str]] = {}
    for name, arch in con.execute(
        "SELECT DISTINCT name, architecture FROM models WHERE n_filters_3x3 > 0"
    ).fetchall():
        families.setdefault(architecture_family(arch), set()).add(name)
    expected = {f for f, names in families.items() if len(names) >= 2}
    assert {"MTCNN", "UNet", "ResNet"} <= expected  # the corpus: three MTCNN nets, U-Nets, two CIFAR ResNets
    for family in expected:
        path = (
            built.out / "tables" / f"shift_family_{re.sub(r'[^a-z0-9]+', '_', family.lower()).strip('_')}.csv"
        )
        shown = _matrix(path)
        assert {a for a, _ in shown} == families[family]
        for key, value in shown.items():
            assert value == pytest.approx(stored[key], rel=1e-9, abs=1e-12), key


# ---------------------------------------------------------------- 5. medical vs non-medical


def test_medical_section_numbers(built):
    con = built.con()
    values = {r["quantity"]: r["value"] for r in read_csv(built.out / "tables" / "medical_test.csv")}
    stored = _stored(con, "medical")[("medical", "non-medical")]
    assert float(values["shift D (stored, nats)"]) == pytest.approx(stored, rel=1e-12)
    assert float(values["shift D (test, nats)"]) == pytest.approx(stored, rel=1e-9)
    p = float(values["permutation p-value"])
    assert 1 / 201 <= p <= 1
    assert float(values["bootstrap 95% interval low"]) <= float(values["bootstrap 95% interval high"])
    n_med = scalar(con, "SELECT count(*) FROM models WHERE domain LIKE 'medical%' AND n_filters_3x3 > 0")
    assert int(values["medical models"]) == n_med
    text = parse(built.html()).text("medical")
    assert f"p = {p:.3g}" in text
    assert "Not a causal claim" in text and "Only " in text and "models" in text
    components = read_csv(built.out / "tables" / "medical_components.csv")
    assert sum(float(r["contribution to D"]) for r in components) == pytest.approx(stored, rel=1e-9)


def _facts(n: int) -> GroupFacts:
    return GroupFacts(n, 1000 * n, "big", 0.5, {"segmentation": n}, {"UNet": n})


def test_verdict_wording_follows_p():
    significant = medical_verdict(0.2, 0.01, (0.1, 0.3), 0.05, 0.1, 2000, _facts(5), _facts(9))
    plain = medical_verdict(0.2, 0.3, (0.1, 0.3), 0.05, 0.1, 2000, _facts(5), _facts(9), duplicate_pairs=2)
    assert "differ from the others more than the model-to-model variation explains" in significant[0]
    assert "no evidence" in plain[0] and "not evidence that they are the same" in plain[0]
    assert "do not differ" not in " ".join([plain[0], *plain[1], *plain[2]])
    for headline, supported, unsupported in (significant, plain):
        text = " ".join([headline, *supported, *unsupported]).lower()
        assert "14 models" in text and "not a causal claim" in text and "architecture" in text
        assert "task" in text
        assert "causes" not in text and "proves" not in text
    assert any("identical filter distributions" in u for u in plain[2])


# ---------------------------------------------------------------- 6. layer quality


def test_degenerated_layers_table(built):
    con = built.con()
    rows = read_csv(built.out / "tables" / "degenerated_layers.csv")
    assert len(rows) == scalar(con, "SELECT count(*) FROM layer_stats WHERE degenerated")
    for r in rows:
        assert float(r["TH(n)"]) == pytest.approx(entropy_threshold(int(r["n"])), rel=1e-9)
        assert r["reason"]
    assert "The most degenerated layers" in parse(built.html()).text("quality")


def test_pruning_counts(built):
    con = built.con()
    rows = read_csv(built.out / "tables" / "pruning.csv")
    kept = scalar(con, "SELECT sum(n_filters - n_sparse) FROM layer_stats")
    assert sum(int(r["kept"]) for r in rows) == kept
    assert sum(int(r["filters"]) for r in rows) == scalar(con, "SELECT count(*) FROM filters")


def test_binary_like_layers_are_drawn(built):
    con = built.con()
    flagged = scalar(con, "SELECT count(*) FROM layer_stats WHERE binary_like")
    text = parse(built.html()).text("quality")
    assert (built.out / "fig_binary_filters.png").is_file()
    if flagged == 0:
        assert "No layer passes the binary-like flag" in text
    rows = read_csv(built.out / "tables" / "binary_like_layers.csv")
    top = scalar(con, "SELECT max(binary_likeness) FROM layer_stats")
    assert float(rows[0]["binary-likeness"]) == pytest.approx(top)


def test_quality_figure_has_one_series_per_model(built):
    rows = read_csv(built.out / "tables" / "quality_by_model.csv")
    assert len(rows) == scalar(built.con(), "SELECT count(DISTINCT model_id) FROM layer_stats")


# ---------------------------------------------------------------- re-run and command line


def test_command_reuses_the_stored_analysis(built, capsys):
    from filterlake.cli import build_parser
    from filterlake.cli.commands import cmd_report

    out = built.out.parent / "report-again"
    args = build_parser().parse_args(
        [
            "report",
            "--lake",
            str(built.lake),
            "--out",
            str(out),
            "--group-by",
            "domain",
            "--preset",
            "medical",
            "--permutations",
            "50",
            "--quiet",
        ]
    )
    assert cmd_report(args) == 0
    printed = capsys.readouterr().out
    assert str((out / "index.html").resolve()) in printed
    assert "medical (" in printed and "permutation p =" in printed
    html = (out / "index.html").read_text()
    assert "layer statistics 0 models computed" in html and "histograms 0 computed" in html


# ---------------------------------------------------------------- helpers


def test_helpers():
    assert architecture_family("ResNet-56 for CIFAR (3 stages)") == "ResNet"
    assert architecture_family("ESPNetv2 segmentation network") == "ESPNetv2"  # a version is another design
    assert architecture_family(None) == "(unknown)"
    assert task_kind("nucleus segmentation (foreground)") == "segmentation"
    assert task_kind("Face Detection") == "detection"
    assert len(short("x" * 100, 30)) == 30 and short("abc") == "abc"


def test_groupings_without_labels_are_left_out(built):
    from filterlake.derived.groupings import n_labels

    con = built.con()
    assert n_labels(con, "domain") == scalar(
        con, "SELECT count(DISTINCT domain) FROM models WHERE n_filters_3x3 > 0 AND domain IS NOT NULL"
    )
    assert n_labels(con, "no_such_metadata_key") == 0
