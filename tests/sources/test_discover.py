"""Folder discovery: a bad sidecar fails its own checkpoint only, nothing is passed over silently, symlinked
folders are followed once, and a named folder that yields nothing is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from filterlake.lake.layout import committed_ids
from filterlake.sources import metadata
from filterlake.sources.discover import HIDDEN, LOOP, NOT_A_CHECKPOINT, RECOGNISED, discover_all
from filterlake.vocab import FAILED, INGESTED
from tests.conftest import manifest_rows

ROWS = {row["path"]: row for row in manifest_rows()}
PNET, ONET = "mtcnn/pnet.pt", "mtcnn/onet.pt"


@pytest.fixture
def folder(tmp_path, corpus):
    """Two good checkpoints, two with bad sidecars, a text file, a hidden file and a symlink loop."""
    root = tmp_path / "drop"
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(corpus / PNET, root / "pnet.pt")
    shutil.copyfile(corpus / ONET, root / "sub" / "onet.pt")
    for name, sidecar in (("bad1.pt", "{nope"), ("bad2.pt", json.dumps({"domain": 3}))):
        shutil.copyfile(corpus / "resnet20_cifar10/resnet20-12fca82f.th", root / name)
        metadata.sidecar_path(root / name).write_text(sidecar)
    (root / "notes.txt").write_text("hello")
    (root / "scan.dat").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (root / ".DS_Store").write_bytes(b"\0")
    os.symlink(root, root / "sub" / "loop")
    return root


def test_a_bad_sidecar_fails_its_own_checkpoint_only(folder, tmp_path):
    """Regression: one bad sidecar aborted the whole folder, and only the first was named."""
    outcomes = {o.source.rsplit("/", 1)[-1]: o for o in ingest([str(folder)], tmp_path / "lake")}
    assert {name: o.status for name, o in outcomes.items()} == {
        "pnet.pt": INGESTED,
        "onet.pt": INGESTED,
        "bad1.pt": FAILED,
        "bad2.pt": FAILED,
    }
    assert "bad1.pt.meta.json: not valid JSON" in outcomes["bad1.pt"].message
    assert "bad2.pt.meta.json: field 'domain'" in outcomes["bad2.pt"].message
    assert committed_ids(tmp_path / "lake") == {ROWS[PNET]["sha256"], ROWS[ONET]["sha256"]}


def test_what_is_passed_over_is_reported_by_reason(folder):
    found = discover_all([str(folder)])
    assert {p.name for p in found.skipped[NOT_A_CHECKPOINT]} == {"notes.txt"}
    assert {p.name for p in found.skipped[RECOGNISED["hdf5"]]} == {"scan.dat"}
    assert {p.name for p in found.skipped[HIDDEN]} == {".DS_Store"}
    assert [p.name for p in found.skipped[LOOP]] == ["loop"]
    assert sorted(line.split(":", 1)[0] for line in found.lines()) == [
        "skipped 1 entry",
        "skipped 1 entry",
        "skipped 1 entry",
        "skipped 1 entry",
    ]


def test_symlinked_folders_are_followed(tmp_path, corpus):
    real = tmp_path / "real"
    real.mkdir()
    shutil.copyfile(corpus / PNET, real / "pnet.pt")
    top = tmp_path / "top"
    top.mkdir()
    os.symlink(real, top / "linked")
    [source] = discover_all([str(top)]).sources
    assert source.uri.endswith("pnet.pt") and source.problem is None


def test_a_named_folder_that_yields_nothing_fails(tmp_path):
    empty, junk, named = tmp_path / "empty", tmp_path / "junk", tmp_path / "model.pt"
    for folder in (empty, junk, named):
        folder.mkdir()
    (junk / "readme.md").write_text("# models")
    outcomes = ingest([str(empty), str(junk), str(named)], tmp_path / "lake")
    assert [o.status for o in outcomes] == [FAILED] * 3
    assert "no checkpoint found in this folder (it is empty)" in outcomes[0].message
    assert "(1 entries passed over, see the skipped lines)" in outcomes[1].message


def test_the_cli_names_every_skip_and_exits_non_zero(folder, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "filterlake", "ingest", str(folder), "--lake", str(tmp_path / "l")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert (
        "bad1.pt.meta.json: not valid JSON" in done.stderr
        and "bad2.pt.meta.json: field 'domain'" in done.stderr
    )
    assert f"skipped 1 entry: {NOT_A_CHECKPOINT}" in done.stderr and f"skipped 1 entry: {LOOP}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_name_that_is_not_utf8_is_ingested(tmp_path, corpus):
    folder = tmp_path / "drop"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"m\xff.pt")
    shutil.copyfile(corpus / PNET, raw)
    [outcome] = ingest([str(folder)], tmp_path / "lake")
    assert outcome.status == INGESTED and outcome.name == "m\ufffd"
    assert "\udcff" not in outcome.source
    [row] = connect(tmp_path / "lake").execute("SELECT source_uri, extra FROM models").fetchall()
    assert row[0].endswith("/m\ufffd.pt")
    assert bytes.fromhex(json.loads(row[1])["source_uri_bytes_hex"]) == raw
