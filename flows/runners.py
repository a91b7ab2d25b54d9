"""Where the flows' tasks run: Prefect's thread pool here, or a Dask cluster (`--dask ADDRESS` / `--dask local:N`).

`dask_address` is the argparse type of `--dask`; `task_runner` the one place a flow's runner is chosen;
`check_cluster` checks an address before a flow run is started on it, so a cluster its tasks could not run on
is named in one line. The workers of a cluster need the project installed and `PREFECT_API_URL` (a running
server, not a run's temporary one) in their environment; `local:N` workers are given the run's own API.
"""

from __future__ import annotations

import argparse
import re
import socket

from prefect import get_client
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from filterlake.errors import FilterlakeError

LOCAL = "local:"
_TCP = re.compile(r"tcp://(?P<host>[^:/\s]+):(?P<port>\d{1,5})")
CONNECT_SECONDS = 5

DASK_HELP = (
    "run the per-checkpoint (per-model) tasks on a Dask cluster: tcp://HOST:PORT of its scheduler (export "
    "PREFECT_API_URL of a running Prefect server here and on its workers; make cluster starts one), or local:N "
    "for a temporary local cluster of N worker processes. Memory is then bounded by the workers (processes x "
    "threads each), not by --concurrency"
)


def dask_address(text: str) -> str:
    """argparse type of `--dask`: `tcp://HOST:PORT` (port 1-65535) or `local:N` (N at least 1)."""
    if text.startswith(LOCAL):
        count = text.removeprefix(LOCAL)
        if not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: local:N needs a number of workers of at least 1")
        return text
    match = _TCP.fullmatch(text)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give tcp://HOST:PORT of a Dask scheduler, or local:N")
    return text


def check_cluster(address: str) -> None:
    """Raise a one-line FilterlakeError naming `address` when its workers could not reach this run's Prefect API
    (no PREFECT_API_URL: the run's API would be a temporary one) or no Dask scheduler accepts connections
    there; `local:N` workers are started by the run itself and are told its API."""
    match = _TCP.fullmatch(address)
    if match is None:
        return
    if not PREFECT_API_URL.value():
        raise FilterlakeError(
            f"--dask {address}: its workers need a running Prefect server; export PREFECT_API_URL here and "
            "on the workers (make cluster starts one)"
        )
    try:
        socket.create_connection((match["host"], int(match["port"])), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise FilterlakeError(f"--dask {address}: no Dask scheduler reachable there ({exc})") from None


def refuse_unusable(parser: argparse.ArgumentParser, address: str | None) -> None:
    """`parser.error` (one line, exit 2) when `--dask` names a cluster the run's tasks could not run on."""
    if address:
        try:
            check_cluster(address)
        except FilterlakeError as exc:
            parser.error(str(exc))


def task_runner(dask: str | None, concurrency: int) -> TaskRunner:
    """A new task runner for one run: a DaskTaskRunner on `dask` (a scheduler address, or `local:N` worker
    processes of one thread each), else a thread pool of `concurrency` workers."""
    if dask is None:
        return ThreadPoolTaskRunner(max_workers=concurrency)
    from prefect_dask import DaskTaskRunner  # imports distributed: only runs that use it pay for it

    if dask.startswith(LOCAL):
        workers = int(dask.removeprefix(LOCAL))
        api = {"PREFECT_API_URL": str(get_client(sync_client=True).api_url)}  # the run's own, maybe temporary
        cluster = {"n_workers": workers, "processes": True, "threads_per_worker": 1, "env": api}
        return DaskTaskRunner(cluster_kwargs=cluster)
    return DaskTaskRunner(address=dask)
