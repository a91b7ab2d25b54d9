"""The groupings: one unique label per model (the `model_labels` view), and the task-kind and family rules whose
SQL is generated from the Python rule constants."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from filterlake.derived.analyze import analyze
from filterlake.derived.groupings import (
    FAMILY,
    MODEL,
    SPACE,
    TASK_KIND,
    UNKNOWN,
    architecture_family,
    family_sql,
    group_expression,
    n_labels,
    task_kind,
    task_kind_sql,
)
from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from tests.conftest import manifest_rows

# Real checkpoints under generic file names: three `net`s (two of them in folders named `a`) and one `model`.
GENERIC = {
    "a/net.pt": "mtcnn/pnet.pt",
    "b/net.pt": "mtcnn/onet.pt",
    "c/a/net.th": "resnet20_cifar10/resnet20-12fca82f.th",
    "d/model.pth": "vdsr/model_epoch_50.pth",
}
TRICKY = [
    None, "", " ", "\u00a0", "\u2028x", "(Foo) bar", "ResNet-20", "VGG16", "UNet2d (x)", "ESPNetv2 y",
    "MTCNN O-Net", "+++", "v2", "Net_v1.5x", "A1-2", "v1.2.3", "X'", "Foo*+", "ResNet50:", "İnception", "Netſ",
    "Net٣", "\tDenseNet-121\n", "a;b", "a,b", "abc:def", "ab\x1cc", "ﬁ", "Σ", "classİfication", "SEGMENTATION",
    "Super-Res x4", "super resolution", "face recognition and classification", "detect & segment", "KLASSIF",
    "\u212aelvin", "o'brien's net", "50", "-", "_v", "v", "ResNet-v2", "U-Net++", "3D-UNet", "'quoted' net",
]  # fmt: skip


def generic_names_lake(corpus: Path, root: Path) -> Path:
    """A lake of the GENERIC copies (no metadata: the names are the file stems)."""
    for target, source in GENERIC.items():
        (root / "models" / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / source, root / "models" / target)
    lake = root / "lake"
    outcomes = ingest([str(root / "models")], lake)
    assert [o.status for o in outcomes] == ["ingested"] * len(GENERIC), [o.message for o in outcomes]
    return lake


@pytest.fixture(scope="module")
def generic(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generic_names_lake(corpus, tmp_path_factory.mktemp("generic"))


def test_models_sharing_a_name_get_distinct_labels(generic):
    con = connect(generic)
    rows = con.execute(
        "SELECT m.model_id, m.source_uri, ml.label FROM models AS m JOIN model_labels AS ml USING (model_id)"
    ).fetchall()
    labels = {
        Path(uri).relative_to(generic.parent / "models").as_posix(): (mid, label) for mid, uri, label in rows
    }
    assert len(rows) == len(GENERIC) == len({label for _, _, label in rows})
    assert labels["b/net.pt"][1] == "net (b)"  # the only `net` in a folder named b
    for shared in ("a/net.pt", "c/a/net.th"):  # name and folder shared: the short model id too
        mid, label = labels[shared]
        assert label == f"net (a, {mid[:8]})"
    assert labels["d/model.pth"][1] == "model"  # a name of its own stays as it is


def test_the_model_grouping_has_one_group_per_model_and_name_pools(generic):
    analysis = analyze(generic, "medical", (MODEL, "name"), permutations=10)
    con = analysis.connect()
    per_model = con.execute(
        "SELECT count(DISTINCT group_a), count(*), max(n_models_a) FROM read_parquet(?)",
        [str(analysis.shifts[MODEL])],
    ).fetchone()
    assert per_model == (len(GENERIC), len(GENERIC) ** 2, 1)
    labels = {r[0] for r in con.execute("SELECT label FROM model_labels").fetchall()}
    stored = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT group_a FROM read_parquet(?)", [str(analysis.shifts[MODEL])]
        ).fetchall()
    }
    assert stored == labels
    pooled = con.execute(
        "SELECT DISTINCT group_a, n_models_a FROM read_parquet(?)", [str(analysis.shifts["name"])]
    )
    assert sorted(pooled.fetchall()) == [("model", 1), ("net", 3)]  # --group-by name still pools by name
    assert (
        n_labels(con, MODEL) == len(GENERIC) and n_labels(con, FAMILY) == 1 and n_labels(con, TASK_KIND) == 1
    )


def test_space_is_what_str_strip_strips():
    assert set(SPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


def _sql_and_python(values: list[str | None]) -> list[tuple]:
    con = duckdb.connect()
    con.register("vals", pa.table({"v": pa.array(values, pa.string())}))
    got = con.execute(f"SELECT v, {family_sql('v')}, {task_kind_sql('v')} FROM vals").fetchall()
    return [(v, (f, k), (architecture_family(v), task_kind(v))) for v, f, k in got]


@pytest.mark.parametrize("column", ["architecture", "task"])
def test_sql_rules_agree_with_python_on_every_corpus_model(column):
    values = [r[column] for r in manifest_rows()]
    assert len(values) > 10
    assert [(v, sql) for v, sql, py in _sql_and_python(values) if sql != py] == []


def test_sql_rules_agree_with_python_on_tricky_strings():
    assert [(v, sql, py) for v, sql, py in _sql_and_python(TRICKY) if sql != py] == []
    assert architecture_family("\u00a0") == UNKNOWN == task_kind(None)
    assert architecture_family("U-Net++") == "U-Net" and architecture_family("3D-UNet") == "3D-UNet"
    assert task_kind("classİfication") == "other"  # str.lower() puts a combining dot between i and f


def test_group_expressions_of_the_rules_over_a_lake(generic):
    con = connect(generic)
    for grouping, rule, column in (
        (FAMILY, architecture_family, "architecture"),
        (TASK_KIND, task_kind, "task"),
    ):
        label, per_layer = group_expression(grouping)
        assert not per_layer
        for value, shown in con.execute(f"SELECT m.{column}, {label} FROM models AS m").fetchall():
            assert shown == rule(value)


def test_a_version_is_another_family_a_size_is_not_and_the_catalog_field_wins():
    """ESPNetv2 is not ESPNet, MobileNetV3 keeps its version, ResNet-20 and ResNet-56 are one family; a
    `family` given in the metadata (models.extra) overrides the rule, in Python and in SQL alike."""
    cases = {
        "ESPNet encoder-decoder (p=2, q=8)": "ESPNet",
        "ESPNetv2 segmentation network": "ESPNetv2",
        "MobileNetV3": "MobileNetV3",
        "ResNet-20 for CIFAR": "ResNet",
        "ResNet-56 for CIFAR": "ResNet",
        "VGG16": "VGG",
        "UNet2d (bioimage.io)": "UNet",
    }
    assert {a: architecture_family(a) for a in cases} == cases
    assert [(v, sql, py) for v, sql, py in _sql_and_python(list(cases)) if sql != py] == []
    con = duckdb.connect()
    rows = [
        ("MTCNN", '{"family": "MTCNN P-Net"}'),
        ("MTCNN", "{}"),
        ("MTCNN", '{"family": " "}'),
        (None, None),
    ]
    con.register("m", pa.table({"architecture": [r[0] for r in rows], "extra": [r[1] for r in rows]}))
    got = [r[0] for r in con.execute(f"SELECT {family_sql('m.architecture', 'm.extra')} FROM m").fetchall()]
    assert got == ["MTCNN P-Net", "MTCNN", "MTCNN", UNKNOWN]
    assert got == [architecture_family(a, json.loads(e or "{}").get("family")) for a, e in rows]
