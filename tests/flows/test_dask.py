"""The flows on a real Dask cluster: scheduler and two worker processes, Prefect's test harness as the API.

Every lake the cluster writes is compared row for row, exactly, with the one `filterlake ingest` and
`filterlake analyze` write in one process from the same checkpoints (real ones from ../shared/corpus).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, manifest_rows
from tests.test_readme import layout_like_the_repository

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

SUBSET = (  # five small checkpoints of four domains, one of them medical
    "mtcnn/pnet.pt",
    "mouse_sc_wm_gm_t1_unet/best_metric_model.pth",
    "ultraface_rfb320/version-RFB-320.pth",
    "espnetv2_cityscapes/espnetv2_s_1.0_city_1024x512.pth",
    "resnet20_cifar10/resnet20-12fca82f.th",
)
TABLES = json.loads((REPO / "schemas" / "lake_tables.json").read_text())
BASE = ("models", "layers", "filters")
DERIVED = tuple(name for name, table in TABLES.items() if isinstance(table, dict) and table.get("derived"))
WHEN = {"models": ("ingested_at",), "basis": ("created_at",)}  # the only columns that differ between two runs


@pytest.fixture(scope="module")
def catalog(corpus: Path, tmp_path_factory) -> Path:
    """A catalog of copies of SUBSET with their MANIFEST.csv rows."""
    folder = tmp_path_factory.mktemp("subset")
    rows = [row for row in manifest_rows() if row["path"] in SUBSET]
    assert len(rows) == len(SUBSET)
    for row in rows:
        (folder / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / row["path"], folder / row["path"])
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(_csv(row[k]) for k in header) for row in rows]
    (folder / "MANIFEST.csv").write_text("\n".join(lines) + "\n")
    return folder / "MANIFEST.csv"


def _csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def reference(catalog: Path, tmp_path_factory) -> Path:
    """The lake of `filterlake ingest` and `filterlake analyze` (defaults) in one process."""
    from filterlake.derived.analyze import analyze
    from filterlake.ingest import ingest

    lake = tmp_path_factory.mktemp("reference") / "lake"
    assert [o.status for o in ingest([], lake, [catalog])] == ["ingested"] * len(SUBSET)
    analyze(lake)
    return lake


@pytest.fixture(scope="module")
def cluster(prefect_harness) -> Iterator[Any]:
    """A LocalCluster of two worker processes (one thread each) whose workers reach the harness's API."""
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL

    api = {"PREFECT_API_URL": PREFECT_API_URL.value()}  # the harness's server, over HTTP
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, env=api) as c,
        Client(c) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def cluster_lake(cluster, catalog: Path, tmp_path_factory) -> Path:
    """The catalog ingested by the ingestion flow with its tasks on the cluster (no refresh)."""
    lake = tmp_path_factory.mktemp("cluster") / "lake"
    summary = _ingest(cluster, catalog, lake)
    assert summary["counts"]["ingested"] == len(SUBSET) and summary["failures"] == []
    return lake


def _ingest(client, catalog: Path, lake: Path) -> dict[str, Any]:
    from flows.ingest import ingest_flow, run_summary

    address = client.scheduler.address
    state = ingest_flow(
        catalogs=[str(catalog)], lake=str(lake), refresh=False, dask=address, return_state=True
    )
    assert state.is_completed(), state.message
    return run_summary(state)


def rows(lake: Path, table: str) -> list[tuple]:
    """Every row of one lake table, each with the folder of its file (the hive keys), sorted; NaN comparable."""
    folder = lake / TABLES[table]["path"].split("/")[0]
    found = []
    for path in sorted(folder.rglob("*.parquet")):
        data = pq.read_table(path).drop_columns(list(WHEN.get(table, ())))
        keys = str(path.parent.relative_to(lake))
        found += [(keys, *map(_canonical, row.values())) for row in data.to_pylist()]
    return sorted(found, key=repr)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return [_canonical(v) for v in value] if isinstance(value, list) else value


def assert_same_tables(lake: Path, expected: Path, tables: tuple[str, ...]) -> None:
    for table in tables:
        got, want = rows(lake, table), rows(expected, table)
        assert got == want, f"{table}: {len(got)} rows against {len(want)}"


def test_ingest_on_the_cluster_writes_the_lake_of_filterlake_ingest(cluster_lake, reference):
    assert_same_tables(cluster_lake, reference, BASE)
    assert len(rows(cluster_lake, "models")) == len(SUBSET)


def test_the_analysis_flow_on_the_cluster_gives_every_derived_table_of_filterlake_analyze(
    cluster, cluster_lake, reference
):
    from flows.analyze import analyze_flow

    summary = analyze_flow(lake=str(cluster_lake), dask=cluster.scheduler.address)
    assert summary["layer_stats"]["computed"] == len(SUBSET) and summary["histograms"]["computed"] == len(
        SUBSET
    )
    assert_same_tables(cluster_lake, reference, BASE + DERIVED)
    assert rows(cluster_lake, "shifts") and rows(cluster_lake, "layer_stats")


def test_per_model_tasks_run_in_the_worker_processes(cluster):
    from prefect import flow

    from flows.analyze import submitting
    from flows.runners import task_runner

    @flow
    def where(address: str) -> list[tuple[str, int]]:
        with task_runner(address, 1) as runner:
            return list(submitting(runner)(lambda m: (m, os.getpid()), ["a", "b", "c", "d"]))

    ran = where(cluster.scheduler.address)
    workers = set(cluster.run(os.getpid).values())
    assert [m for m, _ in ran] == ["a", "b", "c", "d"]
    assert {pid for _, pid in ran} <= workers and os.getpid() not in workers


def killing_a_worker_in_flight(client, task: str) -> threading.Thread:
    """A started thread that SIGKILLs the worker process of the first `task` task the scheduler has given a
    worker; join it, then find the killed pid in its `killed` list (empty when no such task was seen)."""
    pids = client.run(os.getpid)
    killed: list[int] = []

    def kill_one_in_flight() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any(task in str(key) for key in keys):
                    os.kill(pids[worker], signal.SIGKILL)
                    killed.append(pids[worker])
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_in_flight)
    killer.killed = killed  # type: ignore[attr-defined]
    killer.start()
    return killer


def test_a_worker_killed_during_an_ingest_still_ends_in_the_exact_lake(cluster, catalog, reference, tmp_path):
    from filterlake.lake.check import check_lake

    killer = killing_a_worker_in_flight(cluster, "ingest_checkpoint")
    summary = _ingest(cluster, catalog, tmp_path / "lake")
    killer.join()
    assert killer.killed, "no ingest task was seen in flight"
    assert summary["failures"] == [] and summary["counts"]["ingested"] == len(SUBSET)
    assert check_lake(tmp_path / "lake").ok
    assert_same_tables(tmp_path / "lake", reference, BASE)
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts the killed one for the next tests


def test_a_worker_killed_during_an_analysis_still_ends_in_the_exact_lake(
    cluster, cluster_lake, reference, tmp_path
):
    from filterlake.lake.check import check_lake
    from flows.analyze import analyze_flow

    lake = tmp_path / "lake"
    shutil.copytree(cluster_lake, lake)
    for table in DERIVED:  # the lake as ingested: every derived table is computed in this run
        shutil.rmtree(lake / TABLES[table]["path"].split("/")[0], ignore_errors=True)
    (lake / "analysis.json").unlink(missing_ok=True)
    killer = killing_a_worker_in_flight(cluster, "derive")
    summary = analyze_flow(lake=str(lake), dask=cluster.scheduler.address)
    killer.join()
    assert killer.killed, "no derive task was seen in flight"
    assert summary["layer_stats"]["computed"] == len(SUBSET)
    assert check_lake(lake).ok
    assert_same_tables(lake, reference, BASE + DERIVED)
    cluster.wait_for_workers(2, timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", ["ingest", "analyze"])
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("bogus", "'bogus': give tcp://HOST:PORT of a Dask scheduler, or local:N"),
        ("tcp://127.0.0.1", "give tcp://HOST:PORT"),
        ("tcp://127.0.0.1:99999", "give tcp://HOST:PORT"),
        ("local:0", "'local:0': local:N needs a number of workers of at least 1"),
        ("local:two", "local:N needs a number of workers"),
        ("unreachable", "no Dask scheduler reachable there"),
    ],
)
def test_a_bad_dask_value_is_one_error_line_and_exit_2(
    command, value, says, prefect_harness, capsys, monkeypatch
):
    from flows import analyze, ingest

    monkeypatch.setenv("COLUMNS", "200")
    address = f"tcp://127.0.0.1:{_free_port()}" if value == "unreachable" else value
    argv = ["--dask", address] + (["x.pt"] if command == "ingest" else [])
    with pytest.raises(SystemExit) as exit_:
        {"ingest": ingest, "analyze": analyze}[command].main(argv)
    assert exit_.value.code == 2
    usage, error = capsys.readouterr().err.splitlines()
    assert usage.startswith(f"usage: python -m flows.{command}") and says in error and address in error


def test_a_dask_address_without_a_prefect_server_is_refused_in_one_line(capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import ingest

    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(SystemExit) as exit_:
        ingest.main(["--dask", "tcp://127.0.0.1:8786", "x.pt"])
    assert exit_.value.code == 2
    assert "its workers need a running Prefect server; export PREFECT_API_URL" in capsys.readouterr().err


def cluster_commands() -> list[str]:
    """The command lines of the console block of README's "Running on a cluster", comments cut."""
    section = (REPO / "README.md").read_text().split("## Running on a cluster", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, flags=re.DOTALL)[1]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_make_cluster_runs_the_readme_commands_and_stops_every_process_on_ctrl_c(tmp_path):
    """`make cluster`, then README's commands verbatim in a folder laid out like the repository, then Ctrl-C."""
    start, *commands = cluster_commands()
    assert start == "make cluster S3=1"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "FILTERLAKE_CACHE": str(tmp_path / "c"),
    }
    env.pop("PREFECT_API_URL", None)
    for name in (
        "MAKELEVEL",
        "MAKEFLAGS",
        "MFLAGS",
    ):  # under `make test` a nested make prints its folder first
        env.pop(name, None)
    make = subprocess.Popen(
        start.split(), cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        printed = [make.stdout.readline().strip() for _ in range(5)]  # make's echo, then the cluster's lines
        assert printed[1:3] == commands[:2], "make cluster did not get the README's ports: are they taken?"
        assert all(printed[3] in command for command in commands[2:])
        started = psutil.Process(make.pid).children(recursive=True)
        assert (
            len(started) >= 6
        )  # python, the endpoint, the server, the scheduler and two workers (with their own children)
        checkout = layout_like_the_repository(tmp_path)
        (checkout / "filterlake").symlink_to(REPO / "filterlake")  # this checkout's, as the workers import
        done = subprocess.run(
            ["bash", "-c", " && ".join(commands)],
            check=False,
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert done.stdout.count("0 failed") == 2 and done.stdout.count("refresh: basis") == 2
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        rest = make.communicate(timeout=60)[0]
    assert "flows.cluster: stopped" in rest
    assert not [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_failed_analysis_flow_is_one_line_naming_the_lake_and_exit_1(prefect_harness, tmp_path, capsys):
    from flows import analyze

    assert analyze.main(["--lake", str(tmp_path / "nolake")]) == 1
    err = capsys.readouterr().err
    assert f"flows.analyze: {tmp_path / 'nolake'}: no such lake folder" in err and "Traceback" not in err
