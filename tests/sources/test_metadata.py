"""Metadata sidecars and catalogs: validation errors name the field; unknown keys become extra metadata."""

from __future__ import annotations

import json
import re

import pytest

from filterlake.errors import MetadataError
from filterlake.sources import metadata
from filterlake.sources.catalog import load_catalog
from tests.conftest import manifest_rows


def test_sidecar_is_validated_and_split(tmp_path):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    assert metadata.read_sidecar(ckpt) is None
    metadata.sidecar_path(ckpt).write_text(json.dumps({"name": "m", "domain": "natural", "epochs": 90}))
    assert metadata.read_sidecar(ckpt) == {"name": "m", "domain": "natural", "extra": {"epochs": 90}}


@pytest.mark.parametrize(
    "entry,field", [({"name": ""}, "name"), ({"domain": 3}, "domain"), ({"extra": []}, "extra")]
)
def test_sidecar_errors_name_the_field(tmp_path, entry, field):
    ckpt = tmp_path / "m.pt"
    metadata.sidecar_path(ckpt).write_text(json.dumps(entry))
    with pytest.raises(MetadataError, match=rf"m\.pt\.meta\.json: field '{field}'"):
        metadata.read_sidecar(ckpt)


def test_sidecar_that_is_not_json(tmp_path):
    metadata.sidecar_path(tmp_path / "m.pt").write_text("{nope")
    with pytest.raises(MetadataError, match="not valid JSON"):
        metadata.read_sidecar(tmp_path / "m.pt")


def test_manifest_csv_is_a_catalog(corpus):
    entries = load_catalog(corpus / "MANIFEST.csv")
    rows = manifest_rows()
    assert len(entries) == len(rows) == 17
    first = entries[0]
    assert first.source["path"] == str((corpus / rows[0]["path"]).resolve())
    assert first.source["sha256"] == rows[0]["sha256"]
    assert first.metadata["domain"] == rows[0]["domain"] and first.metadata["name"] == rows[0]["name"]
    assert first.metadata["extra"]["filters_3x3"] == rows[0]["filters_3x3"]
    assert "path" not in first.metadata["extra"]


def test_toml_and_json_catalogs(tmp_path):
    (tmp_path / "c.toml").write_text(
        '[[model]]\nname = "a"\nurl = "https://example.org/a.pt"\ndomain = "faces"\nextra = { epochs = 3 }\n'
    )
    (tmp_path / "c.json").write_text(
        json.dumps({"models": [{"name": "b", "wheel": "pkg==1.0", "member": "p/b.pt"}]})
    )
    [a] = load_catalog(tmp_path / "c.toml")
    [b] = load_catalog(tmp_path / "c.json")
    assert a.source == {"url": "https://example.org/a.pt"} and a.metadata["extra"] == {"epochs": 3}
    assert b.source == {"wheel": "pkg==1.0", "member": "p/b.pt"}


@pytest.mark.parametrize(
    "body,message",
    [
        ('[[model]]\nname = "a"\n', "needs exactly one source"),
        ('[[model]]\nname = "a"\npath = "x.pt"\nsha256 = "abc"\n', "field 'sha256'"),
        ('[[model]]\nname = "a"\nwheel = "pkg"\nmember = "m"\n', "field 'wheel'"),
        (
            '[[model]]\nname = "ok"\npath = "x.pt"\n[[model]]\nname = "b"\npath = "y.pt"\ntask = 5\n',
            r"c\.toml entry 2 \(b\): field 'task'",
        ),
    ],
)
def test_invalid_catalog_entries(tmp_path, body, message):
    """An invalid entry fails alone with the entry and field named; the valid entries beside it stay usable."""
    (tmp_path / "c.toml").write_text(body)
    entries = load_catalog(tmp_path / "c.toml")
    [bad] = [e for e in entries if e.problem]
    assert re.search(message, bad.problem) and bad.problem.startswith(str(tmp_path / "c.toml"))
    assert all(e.metadata["name"] == "ok" for e in entries if not e.problem)


def test_unreadable_catalog_is_an_error(tmp_path):
    (tmp_path / "c.toml").write_text("[[model]\n")
    with pytest.raises(MetadataError, match="cannot read catalog"):
        load_catalog(tmp_path / "c.toml")


def test_misspelt_fields_are_warned_about(tmp_path):
    (tmp_path / "c.csv").write_text("name,path,domian,architecure,epochs\na,x.pt,faces,VGG,3\n")
    [entry] = load_catalog(tmp_path / "c.csv")
    assert entry.metadata["extra"] == {"domian": "faces", "architecure": "VGG", "epochs": "3"}
    assert [n.split(": ", 1)[1] for n in entry.notes] == [
        "key 'domian' looks like a misspelt 'domain'; it was kept as extra metadata",
        "key 'architecure' looks like a misspelt 'architecture'; it was kept as extra metadata",
    ]
    ckpt = tmp_path / "m.pt"
    metadata.sidecar_path(ckpt).write_text(json.dumps({"name": "m", "licence": "MIT"}))
    meta, notes = metadata.read_sidecar_with_notes(ckpt)
    assert meta["extra"] == {"licence": "MIT"} and "misspelt 'license'" in notes[0]


def test_demo_catalog_is_valid():
    from tests.conftest import REPO

    entries = load_catalog(REPO / "catalog" / "pypi_zoo.toml")
    assert len(entries) == 26
    assert {e.metadata["domain"] for e in entries} >= {"medical mri", "medical histology", "faces"}


def test_empty_optional_cells_are_missing_values_in_every_format(tmp_path):
    """Regression: an empty wheel_sha256 or python_version cell failed the whole catalog ("None is not of type
    'string'"); empty means missing for every optional field."""
    (tmp_path / "c.csv").write_text(
        "name,wheel,member,wheel_sha256,python_version,domain,license\n"
        "a,pkg==1.0,p/a.pt,,,,\n"
        "b,pkg==1.0,p/b.pt, ,3.11,faces,MIT\n"
    )
    (tmp_path / "c.json").write_text(
        json.dumps(
            [{"name": "c", "url": "https://example.org/c.pt", "sha256": None, "domain": "", "license": None}]
        )
    )
    a, b = load_catalog(tmp_path / "c.csv")
    assert a.source == {"wheel": "pkg==1.0", "member": "p/a.pt"} and a.metadata == {"name": "a", "extra": {}}
    assert b.source == {"wheel": "pkg==1.0", "member": "p/b.pt", "python_version": "3.11"}
    assert b.metadata == {"name": "b", "domain": "faces", "license": "MIT", "extra": {}}
    [c] = load_catalog(tmp_path / "c.json")
    assert c.source == {"url": "https://example.org/c.pt"} and c.metadata == {"name": "c", "extra": {}}
