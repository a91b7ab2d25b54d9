"""The lake on S3-compatible storage, against a real `moto_server` over HTTP: the corpus ingested into s3://
gives the tables of a local ingest; pyarrow, polars and DuckDB read it alike; merges, removal, check and the
one-line errors of a missing bucket, rejected credentials and an unreachable endpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.lake.layout import filters_part, layers_file, model_file
from filterlake.lake.location import ROOT, ObjectLake, parse_lake
from filterlake.lake.rows import model_row
from tests.conftest import REPO, manifest_rows
from tests.lake.s3_endpoint import CREDENTIALS, free_port, moto_server, s3_client
from tests.lake.test_crash_and_concurrency import TOTAL_FILTERS, only_whole_models
from tests.test_readme import layout_like_the_repository, run

pytestmark = pytest.mark.s3
SORT_KEYS = {
    "models": ["model_id"],
    "layers": ["model_id", "layer_idx"],
    "filters": ["model_id", "layer_idx", "filter_idx"],
}
DIFFERS = {"models": ["ingested_at"]}  # the moment of the ingest; every other column must be equal
README_SECTION = "## The lake on S3-compatible storage"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "filterlake", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def table_of(root: str, table: str, filesystem: pafs.FileSystem | None = None) -> pa.Table:
    """Every row of a base table read with pyarrow.dataset, sorted, without the columns that may differ."""
    data = ds.dataset(f"{root}/{table}", filesystem=filesystem, format="parquet", exclude_invalid_files=False)
    rows = data.to_table().drop_columns(DIFFERS.get(table, []))
    return rows.sort_by([(k, "ascending") for k in SORT_KEYS[table]])


def pyarrow_s3(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        region=CREDENTIALS["AWS_REGION"],
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def corpus_in_s3(s3_env, corpus) -> ObjectLake:
    """The corpus's MANIFEST ingested by the CLI (two worker processes) into a bucket of its own."""
    lake = ObjectLake("corpus-lake", "lake")
    s3_client(s3_env).create_bucket(Bucket=lake.bucket)
    done = cli(
        "ingest", "-q", "--workers", "2", "--lake", lake.uri, "--catalog", str(corpus / "MANIFEST.csv")
    )
    assert done.returncode == 0, done.stderr
    return lake


@pytest.mark.slow
def test_the_corpus_ingested_into_s3_equals_a_local_ingest(corpus_in_s3, corpus_lake, s3_env):
    s3 = pyarrow_s3(s3_env)
    for table in ("models", "layers", "filters"):
        remote = table_of(f"{corpus_in_s3.bucket}/{corpus_in_s3.prefix}", table, s3)
        local = table_of(str(corpus_lake), table)
        assert remote.num_rows == local.num_rows > 0
        assert remote.equals(local), table
    assert table_of(str(corpus_lake), "models", None).num_rows == 17
    assert check_lake(corpus_in_s3, repair_leftovers=False).lines() == ["ok: 17 models, 445,633 filters"]


def per_model_sums_arrow(filters: pa.Table) -> dict[str, tuple[int, float]]:
    grouped = filters.group_by("model_id").aggregate([("filter_idx", "count"), ("w4", "sum")])
    return {r["model_id"]: (r["filter_idx_count"], round(r["w4_sum"], 3)) for r in grouped.to_pylist()}


@pytest.mark.slow
def test_pyarrow_polars_and_duckdb_read_the_s3_lake_alike(corpus_in_s3, corpus_lake, s3_env):
    import duckdb
    import polars as pl

    from filterlake.lake.location import fsspec_filesystem

    want = per_model_sums_arrow(table_of(str(corpus_lake), "filters"))  # the local lake, independently
    assert sum(n for n, _ in want.values()) == TOTAL_FILTERS
    s3 = pyarrow_s3(s3_env)
    hive = ds.dataset(
        f"{corpus_in_s3.url('filters')[5:]}", filesystem=s3, format="parquet", partitioning="hive"
    )
    assert per_model_sums_arrow(hive.to_table(columns=["model_id", "filter_idx", "w4"])) == want
    scanned = (
        pl.scan_parquet(corpus_in_s3.url("filters/**/*.parquet"), hive_partitioning=True)
        .group_by("model_id")
        .agg(pl.len().alias("n"), pl.col("w4").cast(pl.Float64).sum().alias("s"))
        .collect()
    )
    assert {r["model_id"]: (r["n"], round(r["s"], 3)) for r in scanned.to_dicts()} == want
    con = duckdb.connect()
    con.register_filesystem(fsspec_filesystem())
    raw = con.execute(
        "SELECT model_id, count(*), round(sum(w4::DOUBLE), 3) FROM read_parquet(?, hive_partitioning=true) "
        "GROUP BY ALL",
        [corpus_in_s3.url("filters/**/*.parquet")],
    ).fetchall()
    assert {m: (n, s) for m, n, s in raw} == want
    views = connect(corpus_in_s3)
    assert only_whole_models(corpus_in_s3) == 17
    assert views.execute("SELECT count(*) FROM layers").fetchone()[0] == sum(
        1 for _ in table_of(str(corpus_lake), "layers").to_pylist()
    )
    snapshot = sorted(want)[:3]
    assert connect(corpus_in_s3, snapshot).execute("SELECT count(*) FROM filters").fetchone()[0] == sum(
        want[m][0] for m in snapshot
    )


@pytest.mark.slow
def test_the_readme_commands_for_s3_run_verbatim(tmp_path, s3_env, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # .venv/bin/filterlake runs this checkout's code, as in CI
    text = (REPO / "README.md").read_text()
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    commands = [
        c.strip()
        for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL)
        for c in block.splitlines()
    ]
    commands = [c.split("  #")[0].strip() for c in commands if c.strip()]
    assert len(commands) >= 6
    bucket = re.search(r"s3://([\w.-]+)/", commands[0])[1]
    s3_client(s3_env).create_bucket(Bucket=bucket)
    checkout = layout_like_the_repository(tmp_path)
    outputs = []
    for command in commands:
        done = run(command, checkout)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, command
        outputs.append(done.stdout)
    mtcnn = sum(int(r["shape_only_filters"]) for r in manifest_rows() if r["path"].startswith("mtcnn/"))
    assert connect(ObjectLake(bucket, "lake")).execute("SELECT count(*) FROM filters").fetchone()[0] == mtcnn
    counted = [o for o in outputs if re.search(rf"\b{mtcnn}\b", o)]
    assert len(counted) >= 4, outputs  # sql, polars, pyarrow and duckdb each print the count
    layers = sum(int(r["shape_only_layers"]) for r in manifest_rows() if r["path"].startswith("mtcnn/"))
    analysed = connect(ObjectLake(bucket, "lake")).execute("SELECT count(*) FROM layer_stats").fetchone()[0]
    assert analysed == layers and any(re.search(rf"^ +{layers} ", o, flags=re.MULTILINE) for o in outputs)


def test_concurrent_metadata_merges_lose_nothing(s3_lake, corpus):
    """Four threads, each with its own HTTP connections, merge 8 keys each into one models row."""
    from filterlake.lake.writer import update_model_row

    done = cli("ingest", "-q", "--lake", s3_lake.uri, str(corpus / "mtcnn" / "pnet.pt"))
    assert done.returncode == 0, done.stderr
    (model_id,) = connect(s3_lake).execute("SELECT model_id FROM models").fetchone()

    def add_keys(worker: int) -> None:
        for k in range(8):

            def add(row, key=f"w{worker}k{k}", value=k):
                return {**row, "extra": json.dumps({**json.loads(row["extra"]), key: value})}

            assert update_model_row(s3_lake, model_id, add)

    threads = [threading.Thread(target=add_keys, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    extra = json.loads(model_row(s3_lake, model_id, ["extra"])["extra"])
    assert {k: v for k, v in extra.items() if re.fullmatch(r"w\dk\d", k)} == {
        f"w{w}k{k}": k for w in range(4) for k in range(8)
    }


def test_remove_and_check_of_an_s3_lake(s3_lake, corpus, monkeypatch):
    done = cli("ingest", "-q", "--lake", s3_lake.uri, str(corpus / "mtcnn"), str(corpus / "vdsr"))
    assert done.returncode == 0, done.stderr
    ids = sorted(m for (m,) in connect(s3_lake).execute("SELECT model_id FROM models").fetchall())
    assert len(ids) == 3
    removed = cli("remove", "--lake", s3_lake.uri, ids[0][:12])
    assert removed.returncode == 0 and removed.stdout.startswith(f"removed {ids[0][:12]}"), removed.stderr
    client = s3_client(os.environ["AWS_ENDPOINT_URL"])
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_lake.bucket).get("Contents", [])}
    assert not any(ids[0] in key for key in keys)
    assert {s3_lake.key(model_file(ROOT, m)) for m in ids[1:]} <= keys
    # an interrupted write: filters and layers without a models row, kept while young, removed once old
    client.put_object(Bucket=s3_lake.bucket, Key=s3_lake.key(filters_part(ROOT, "f" * 64)), Body=b"x")
    client.put_object(Bucket=s3_lake.bucket, Key=s3_lake.key(layers_file(ROOT, "f" * 64)), Body=b"x")
    young = check_lake(s3_lake)
    assert young.ok and young.models == 2 and "2 objects without a models row" in young.notes[0]
    monkeypatch.setenv("FILTERLAKE_S3_ORPHAN_GRACE_SECONDS", "0")
    assert not check_lake(s3_lake, repair_leftovers=False).ok
    assert check_lake(s3_lake).repaired == {"orphan_objects": 2, "staging": 0}
    assert check_lake(s3_lake, repair_leftovers=False).lines() == [
        f"ok: 2 models, {connect(s3_lake).execute('SELECT sum(n_filters_3x3) FROM models').fetchone()[0]:,} filters"
    ]
    # a damaged filters object of a committed model is named with its repair
    client.put_object(Bucket=s3_lake.bucket, Key=s3_lake.key(filters_part(ROOT, ids[1])), Body=b"not parquet")
    checked = cli("check", "--lake", s3_lake.uri)
    assert checked.returncode == 1 and f"model {ids[1][:12]}" in checked.stdout
    assert f"filterlake remove {ids[1][:12]}" in checked.stdout
    monkeypatch.delenv("FILTERLAKE_S3_ORPHAN_GRACE_SECONDS")
    forced = cli("ingest", "--force", "--lake", s3_lake.uri, model_row(s3_lake, ids[1])["source_uri"])
    assert forced.returncode == 0 and "1 ingested" in forced.stdout, forced.stderr
    assert check_lake(s3_lake, repair_leftovers=False).ok


def one_line_error(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_missing_bucket_rejected_credentials_and_an_unreachable_endpoint_are_one_line(s3_env, corpus):
    env = {k: v for k, v in os.environ.items() if k != "FILTERLAKE_LAKE"}
    line = one_line_error(cli("ingest", "--lake", "s3://no-such-bucket/lake", str(corpus / "vdsr"), env=env))
    assert line == (
        "filterlake: error: s3://no-such-bucket/lake: no such bucket 'no-such-bucket' (create it first; "
        "filterlake does not create buckets)"
    )
    closed = {
        **env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "FILTERLAKE_S3_RETRY_SECONDS": "1",
    }
    line = one_line_error(cli("models", "--lake", "s3://some-bucket/lake", env=closed))
    assert line.startswith("filterlake: error: s3://some-bucket/lake: object store at http://127.0.0.1:")
    assert line.endswith("after 1 s of retries")
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "1"}) as endpoint:  # authenticates from the 2nd request
        s3_client(endpoint).create_bucket(Bucket="guarded")
        wrong = {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_SECRET_ACCESS_KEY": "wrong"}
        for args in (("check",), ("ingest", str(corpus / "vdsr"))):
            line = one_line_error(cli(*args, "--lake", "s3://guarded/lake", env=wrong))
            assert line.startswith(
                "filterlake: error: s3://guarded/lake: access denied (credentials rejected"
            )
    line = one_line_error(cli("compact", "--lake", "s3://some-bucket/lake", env=env))
    assert "s3://some-bucket/lake: this command does not support an s3:// lake yet" in line
    assert one_line_error(cli("models", "--lake", "gs://x/y", env=env)).endswith(
        "unsupported lake location (give a folder, file:///PATH or s3://BUCKET/PREFIX)"
    )


def test_a_file_uri_is_a_local_lake(tmp_path, corpus):
    done = cli("ingest", "-q", "--lake", f"file://{tmp_path}/lake", str(corpus / "vdsr"))
    assert done.returncode == 0, done.stderr
    assert parse_lake(f"file://{tmp_path}/lake") == tmp_path / "lake"
    assert (
        check_lake(tmp_path / "lake", repair_leftovers=False).ok and (tmp_path / "lake" / "models").is_dir()
    )


def test_two_writers_of_the_same_model_write_the_same_bytes(s3_lake, corpus):
    """The premise of the protocol: a second writer of a model replaces its objects with identical bytes."""
    from filterlake.ingest import ingest

    other = ObjectLake(s3_lake.bucket, "other")
    for lake in (s3_lake, other):
        assert [o.status for o in ingest([str(corpus / "mtcnn" / "onet.pt")], lake)] == ["ingested"]
    (model_id,) = connect(s3_lake).execute("SELECT model_id FROM models").fetchone()
    client = s3_client(os.environ["AWS_ENDPOINT_URL"])
    for relative in (filters_part(ROOT, model_id), layers_file(ROOT, model_id)):
        a, b = (client.get_object(Bucket=s3_lake.bucket, Key=lake.key(relative)) for lake in (s3_lake, other))
        assert a["Body"].read() == b["Body"].read() and a["ETag"] == b["ETag"]


def test_an_empty_bucket_is_an_empty_lake(s3_lake):
    con = connect(s3_lake)
    assert [con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in ("models", "filters_meta")] == [
        0,
        0,
    ]
    assert check_lake(s3_lake).lines() == ["ok: 0 models, 0 filters"]
    client = s3_client(os.environ["AWS_ENDPOINT_URL"])
    assert "Contents" not in client.list_objects_v2(Bucket=s3_lake.bucket)  # reading wrote nothing


def test_lake_locations(tmp_path, monkeypatch):
    from filterlake.errors import LakeError

    assert parse_lake("s3://bucket/some/prefix/") == ObjectLake("bucket", "some/prefix")
    assert parse_lake("s3://bucket").url("models/m.parquet") == "s3://bucket/models/m.parquet"
    assert parse_lake(f"file://{tmp_path}/my%20lake") == tmp_path / "my lake"
    monkeypatch.setenv("FILTERLAKE_LAKE", "s3://from-env/lake")
    assert parse_lake(None) == ObjectLake("from-env", "lake") and parse_lake("here") == ROOT / "here"
    for bad, reason in (("s3://ab/lake", "not a bucket name"), ("gs://b/lake", "unsupported lake location")):
        with pytest.raises(LakeError, match=reason):
            parse_lake(bad)


def test_a_lake_at_the_root_of_a_bucket(s3_lake, corpus):
    from filterlake.ingest import ingest

    root = ObjectLake(s3_lake.bucket, "")
    assert [o.status for o in ingest([str(corpus / "mtcnn" / "pnet.pt")], root)] == ["ingested"]
    (pnet,) = [int(r["shape_only_filters"]) for r in manifest_rows() if r["path"] == "mtcnn/pnet.pt"]
    assert connect(root).execute("SELECT count(*) FROM filters").fetchone()[0] == pnet
    assert check_lake(root, repair_leftovers=False).lines() == [f"ok: 1 models, {pnet:,} filters"]
    keys = {
        o["Key"]
        for o in s3_client(os.environ["AWS_ENDPOINT_URL"]).list_objects_v2(Bucket=root.bucket)["Contents"]
    }
    assert {k.split("/")[0] for k in keys} == {"lake.json", "models", "layers", "filters"}
