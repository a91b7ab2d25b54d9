"""Per-model views key on model_id, long labels fit their figures (or a table replaces the heatmap), the report
removes only what it wrote, and the depth figures say where the depths come from."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from html import unescape
from pathlib import Path

import pytest

from filterlake.cli import main
from filterlake.derived.analyze import analyze
from filterlake.derived.groupings import architecture_family, group_expression, task_kind
from filterlake.errors import FilterlakeError
from filterlake.lake.duck import connect
from filterlake.report import build_report, figures, layer_figures
from filterlake.report.build import MANIFEST
from filterlake.report.compose import analyze_and_report
from filterlake.report.figures import HEATMAP_MAX
from filterlake.report.text import DEPTH_SOURCES, fit
from tests.derived.test_groupings import GENERIC, generic_names_lake

README_EXAMPLE = ("domain", "task", "architecture")
RULES = (("task_kind", task_kind, "task"), ("family", architecture_family, "architecture"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def text(out: Path) -> str:
    return unescape((out / "index.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def analysed(report_lake: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the corpus lake analysed by the README example's groupings and the two rule groupings, every
    model counted: then the corpus has 13 architectures, one more than a heatmap draws (its two exports of one
    network in two formats carry architecture names of their own)."""
    lake = tmp_path_factory.mktemp("labels") / "lake"
    shutil.copytree(report_lake, lake)
    groupings = (*README_EXAMPLE, *(g for g, _, _ in RULES), "depth_decile", "medical", "model")
    return analyze(lake, "medical", groupings, permutations=20, merge_duplicates=False)


# ---------------------------------------------------------------- 1. one label per model


def test_models_sharing_a_name_are_apart_in_every_per_model_view(corpus, tmp_path):
    lake = generic_names_lake(corpus, tmp_path)
    out = tmp_path / "report"
    analyze_and_report(lake, out, ("model",), permutations=20)
    labels = {r[0] for r in connect(lake).execute("SELECT label FROM model_labels").fetchall()}
    assert len(labels) == len(GENERIC)
    matrix = read_csv(out / "tables" / "shift_model.csv")
    assert (
        [r["group"] for r in matrix]
        and {r["group"] for r in matrix} == labels
        and len(matrix) == len(GENERIC)
    )
    for table in ("models", "coefficient_spread_by_model", "quality_by_model", "pruning"):
        assert sorted(r["model"] for r in read_csv(out / "tables" / f"{table}.csv")) == sorted(labels), table
    assert (out / "fig_shift_model.png").is_file()


def test_the_unknown_family_is_not_drawn_as_an_architecture(corpus, tmp_path):
    lake = generic_names_lake(corpus, tmp_path)  # no metadata: `net` and `model` have no architecture
    out = tmp_path / "report"
    analyze_and_report(lake, out, ("domain",), permutations=20)
    page = text(out)
    assert f"{len(GENERIC)} models have no architecture in the metadata" in page
    assert "(unknown) models" not in page and "(unknown) family" not in page
    assert not list(out.glob("fig_shift_family_*.png")) and not list(out.glob("tables/shift_family_*.csv"))


# ---------------------------------------------------------------- 2. long labels, large groupings, rule groupings


def test_fit_wraps_then_shortens():
    long = "ResNet-20 for CIFAR (3 stages of 16/32/64 channels, option-A shortcuts); 271,098 parameters"
    assert fit("short label", 28, 2) == "short label" and fit(long) == fit(long, 34, 1)
    lines = fit(long, 28, 2).split("\n")
    assert len(lines) == 2 and all(len(line) <= 28 for line in lines) and lines[-1].endswith("arameters")


def test_the_readme_example_draws_only_legible_figures(analysed, tmp_path, monkeypatch):
    drawn = []
    for module in (figures, layer_figures):
        saving = module.save
        monkeypatch.setattr(
            module, "save", lambda fig, path, saving=saving: (drawn.append(fig), saving(fig, path))[1]
        )
    out = tmp_path / "report"
    report = build_report(analysed, out, README_EXAMPLE)
    assert len(drawn) == len(report.figures)
    for fig in drawn:  # tick labels and the groups' legend entries of every figure: a few short lines each
        labels = [t for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
        labels += [t for legend in fig.legends if legend.get_title().get_text() for t in legend.get_texts()]
        for label in labels:
            assert all(len(line) <= 40 for line in label.get_text().split("\n")), label.get_text()
    sizes = {g: len(read_csv(out / "tables" / f"shift_{g}.csv")) for g in README_EXAMPLE}
    assert sizes["architecture"] > HEATMAP_MAX >= sizes["domain"]
    for grouping, n in sizes.items():
        assert (out / f"fig_shift_{grouping}.png").is_file() == (n <= HEATMAP_MAX), grouping
    pairs = read_csv(out / "tables" / "shift_architecture_pairs.csv")
    n = sizes["architecture"]
    assert len(pairs) == n * (n - 1) // 2
    d = [float(r["D (nats)"]) for r in pairs]
    assert d == sorted(d, reverse=True)
    matrix = {
        (r["group"], b): float(v)
        for r in read_csv(out / "tables" / "shift_architecture.csv")
        for b, v in list(r.items())[1:]
    }
    assert all(matrix[r["architecture A"], r["architecture B"]] == float(r["D (nats)"]) for r in pairs)
    page = text(out)
    assert f"A heatmap shows at most {HEATMAP_MAX} groups" in page
    assert f"{n} groups are more than a heatmap shows legibly (at most {HEATMAP_MAX})" in page


@pytest.mark.parametrize("grouping, rule, column", RULES)
def test_task_kind_and_family_are_groupings(analysed, grouping, rule, column):
    con = analysed.connect()
    label, _ = group_expression(grouping)
    rows = con.execute(f"SELECT m.{column}, {label}, m.n_filters_3x3 FROM models AS m").fetchall()
    assert len(rows) == len(analysed.model_ids)
    assert [(value, shown) for value, shown, _ in rows if shown != rule(value)] == []  # every corpus model
    stored = con.execute(
        "SELECT DISTINCT group_a FROM read_parquet(?)", [str(analysed.shifts[grouping])]
    ).fetchall()
    assert {g for (g,) in stored} == {rule(value) for value, _, n in rows if n > 0}


# ---------------------------------------------------------------- 3. --out


def test_a_report_removes_only_the_files_it_wrote(analysed, tmp_path):
    out = tmp_path / "report"
    (out / "tables").mkdir(parents=True)
    mine = [
        out / "fig_mine.png",
        out / "tables" / "mine.csv",
        out / "fig_shift_domain.png",
        out / "notes.txt",
    ]
    for path in mine:
        path.write_text("the user's own")
    first = build_report(analysed, out, ("domain", "depth_decile"))
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert set(listed) == {
        p.relative_to(out).as_posix() for p in (first.index, first.summary, *first.figures, *first.tables)
    }
    assert all(p.is_file() for p in mine if p.name != "fig_shift_domain.png")  # overwritten, not removed
    second = build_report(analysed, out, ("task",))
    assert (
        not (out / "fig_shift_depth_decile.png").exists()
        and not (out / "tables" / "shift_depth_decile.csv").exists()
    )
    assert not (out / "fig_shift_domain.png").exists()  # the first report wrote it
    assert all(p.is_file() for p in mine if p.name != "fig_shift_domain.png")
    assert {p.name for p in second.figures} <= {p.name for p in out.glob("fig_*.png")}
    assert {p.name for p in out.glob("fig_*.png")} - {p.name for p in second.figures} == {"fig_mine.png"}


def test_out_naming_a_file_is_a_one_line_error(analysed, tmp_path, capsys):
    taken = tmp_path / "taken.html"
    taken.write_text("not a folder")
    with pytest.raises(FilterlakeError, match=re.escape(str(taken))):
        build_report(analysed, taken)
    with pytest.raises(FilterlakeError, match=re.escape(str(taken))):
        analyze_and_report(analysed.lake, taken / "inside")
    assert main(["report", "--lake", str(analysed.lake), "--out", str(taken), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(taken) in err
    assert taken.read_text() == "not a folder"


# ---------------------------------------------------------------- 4. depth sources


def test_depth_figures_state_where_the_depths_come_from(built):
    counts = Counter(
        s
        for (s,) in built.con().execute("SELECT depth_source FROM models WHERE n_filters_3x3 > 0").fetchall()
    )
    assert len(counts) > 1  # the corpus has graphs and state dicts
    md = (built.out / "summary.md").read_text(encoding="utf-8").split("\n")
    for figure in ("fig_quality_depth.png", "fig_shift_depth_decile.png"):
        caption = md[next(i for i, line in enumerate(md) if line.endswith(f"]({figure})")) + 2]
        assert f"Conv depth of the {sum(counts.values())} models" in caption, figure
        for source, n in counts.items():
            assert f"{n} {DEPTH_SOURCES[source]}" in caption, (figure, source)
        assert "a guess" in caption
