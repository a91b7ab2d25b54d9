"""The command line as a user runs it: exit codes, summaries, output formats, errors without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

FILTERLAKE = [sys.executable, "-m", "filterlake"]


def run(*args, cwd=REPO, env=None):
    return subprocess.run(
        [*FILTERLAKE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_ingest_summary_and_exit_code(tmp_path, corpus):
    good = tmp_path / "in"
    good.mkdir()
    shutil.copy(corpus / "mtcnn" / "pnet.pt", good / "pnet.pt")
    (good / "pnet.pt.meta.json").write_text(json.dumps({"name": "P-Net", "domain": "faces"}))
    done = run("ingest", good, "--lake", tmp_path / "lake")
    assert done.returncode == 0, done.stderr
    assert "1 sources: 1 ingested" in done.stdout and "3 layers, 702 filters" in done.stdout  # the summary
    (good / "broken.pth").write_bytes(b"\x80\x02garbage")
    again = run("ingest", good, "--lake", tmp_path / "lake")
    assert again.returncode == 1
    assert "1 already present" in again.stdout and "1 failed" in again.stdout
    assert f"failed {good / 'broken.pth'}: " in again.stderr and "Traceback" not in again.stderr


def test_models_and_sql_formats(corpus_lake):
    listed = run("models", "--lake", corpus_lake, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert len(rows) == 17 and {"name", "domain", "n_filters_3x3"} <= set(rows[0])
    out = run(
        "sql",
        "SELECT domain, sum(n_filters_3x3) AS n FROM models GROUP BY domain ORDER BY domain",
        "--lake",
        corpus_lake,
        "--format",
        "json",
    )
    result = {r["domain"]: r["n"] for r in json.loads(out.stdout)}
    assert result["natural"] == 29744 + 94256 + 73856
    table = run("sql", "SELECT count(*) AS n FROM filters_meta WHERE domain = 'faces'", "--lake", corpus_lake)
    assert table.stdout.splitlines()[2].strip() == str(7872 * 2 + 702 + 6240)


def test_sql_error_is_one_clean_line(corpus_lake):
    done = run("sql", "SELECT nope FROM models", "--lake", corpus_lake)
    assert done.returncode == 1 and done.stderr.startswith("filterlake: error: SQL error:")
    assert "Traceback" not in done.stderr


def test_lake_from_environment(tmp_path, corpus):
    env = {"FILTERLAKE_LAKE": str(tmp_path / "envlake"), "PATH": "/usr/bin:/bin"}
    assert run("ingest", corpus / "mtcnn" / "pnet.pt", env=env).returncode == 0
    assert (tmp_path / "envlake" / "models").is_dir()


def test_check_command(corpus_lake):
    done = run("check", "--lake", corpus_lake, "--no-repair")
    assert done.returncode == 0 and done.stdout.strip().endswith("ok: 17 models, 445,633 filters")


def test_plain_duckdb_reads_the_lake_without_filterlake(corpus_lake, tmp_path):
    """What a user runs in the DuckDB CLI: raw globs, and the views of sql/ (no filterlake import)."""
    script = f"""
import duckdb, pathlib
con = duckdb.connect()
print(con.execute("SELECT count(*) FROM read_parquet('{corpus_lake}/filters/**/*.parquet', hive_partitioning=true)").fetchone()[0])
con.execute("SET VARIABLE lake = '{corpus_lake}'")
con.execute(pathlib.Path("{REPO}/sql/init.sql").read_text())
print(con.execute("SELECT count(*) FROM filters_meta WHERE domain = 'natural'").fetchone()[0])
"""
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["445633", str(29744 + 94256 + 73856)]


@pytest.mark.parametrize("command", ["ingest", "models", "sql", "analyze", "shift", "report", "check"])
def test_help_explains_every_command(command):
    done = run(command, "--help")
    assert done.returncode == 0 and "--lake" in done.stdout


def test_unknown_grouping_is_a_clean_error(corpus_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(corpus_lake, lake)
    done = run("analyze", "--lake", lake, "--group-by", "domian", "-q")
    assert done.returncode == 1 and "--group-by domian: no model has a value" in done.stderr
    assert "Traceback" not in done.stderr


def test_analysis_of_a_lake_without_3x3_filters_is_a_clean_error(tmp_path, corpus):
    lake = tmp_path / "lake"
    assert run("ingest", corpus / "dfdx_mnist_mlp", "--lake", lake).returncode == 0
    done = run("analyze", "--lake", lake, "-q")
    assert done.returncode == 1 and "hold 0 3x3 filters" in done.stderr and "Traceback" not in done.stderr
    assert run("ingest", corpus / "mtcnn" / "pnet.pt", "--lake", lake).returncode == 0
    done = run("analyze", "--lake", lake, "-q")  # no metadata: the default grouping is a note, not an error
    assert done.returncode == 0 and "note: no model has a domain" in done.stderr
    done = run(
        "sql", "SELECT count(*) AS n, sum(n_filters) AS f FROM layer_stats", "--lake", lake, "--format", "csv"
    )
    assert done.returncode == 0, (
        done.stderr
    )  # the analysis views are there, as in the DuckDB CLI with init.sql
    assert list(csv.DictReader(io.StringIO(done.stdout))) == [{"n": "3", "f": "702"}]
