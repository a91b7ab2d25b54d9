"""`make cluster`: a Prefect server, a Dask scheduler and N Dask workers on this machine, until Ctrl-C.

It is the smallest real cluster the flows' `--dask ADDRESS` runs on: the server listens on 127.0.0.1 (port 4200,
or a free one when 4200 is taken), so workers and driver share one API that outlives a run; the scheduler on
8786 (or a free port); each worker is a `dask worker` process of one thread with PREFECT_API_URL set. It prints
the `export PREFECT_API_URL=...` line and the `--dask` address to use, and stops every process it started on
Ctrl-C or SIGTERM (exit 0), or when one of them dies (exit 1, naming it).

With `--s3` it also starts a local S3 endpoint (`moto_server`, of the dev extra; its objects live in memory until
Ctrl-C) with a bucket `filterlake-demo`, gives the workers its AWS environment and prints the `export` line of
it, so `--lake s3://filterlake-demo/...` works on the cluster as against a real bucket.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from flows import QUIET_ENV
from flows.ingest import positive_int

ROOT = Path(__file__).resolve().parents[1]  # the workers' folder: they import this checkout's filterlake
HOST = "127.0.0.1"
S3_BUCKET = "filterlake-demo"
S3_ENV = {  # moto_server accepts any credentials; these only have to be set
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
START_SECONDS = 90
STOP_SECONDS = 10


class ClusterError(Exception):
    """Why the cluster could not start or stopped: one line naming the process."""


def port(preferred: int) -> int:
    """`preferred` when nothing listens on it on HOST, else a free port chosen by the system (probed as the
    servers bind, with SO_REUSEADDR: a port a stopped cluster left in TIME_WAIT is free for them)."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise ClusterError(f"no free port on {HOST}")


def wait_until(ready, what: str, processes: dict[str, subprocess.Popen]) -> None:
    """Poll `ready()` until it is true; ClusterError when a started process exits or START_SECONDS pass."""
    deadline = time.monotonic() + START_SECONDS
    while not ready():
        check_alive(processes)
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready after {START_SECONDS} s")
        time.sleep(0.3)


def check_alive(processes: dict[str, subprocess.Popen]) -> None:
    """ClusterError naming the first started process that has exited."""
    for name, process in processes.items():
        if process.poll() is not None:
            raise ClusterError(f"{name} exited with code {process.returncode}")


def api_ready(api: str) -> bool:
    """True when the Prefect server at `api` answers its health check."""
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def workers_ready(scheduler: str, n: int) -> bool:
    """True when the scheduler at `scheduler` has `n` workers connected."""
    from distributed import Client

    try:
        with Client(scheduler, timeout=2) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"]) >= n
    except OSError:
        return False


def listening(port_number: int) -> bool:
    """True when something accepts connections on HOST:port_number."""
    try:
        with socket.create_connection((HOST, port_number), timeout=1):
            return True
    except OSError:
        return False


def start_s3(processes: dict[str, subprocess.Popen], preferred: int) -> dict[str, str]:
    """Start moto_server on HOST, create the demo bucket; the AWS environment that reaches it."""
    command = Path(sys.executable).parent / "moto_server"
    if not command.exists():
        raise ClusterError(f"{command}: not installed (the dev extra has it: `make setup`)")
    chosen = port(preferred)
    start(processes, "moto_server", [str(command), "-H", HOST, "-p", str(chosen)], dict(os.environ))
    wait_until(lambda: listening(chosen), f"moto_server on {HOST}:{chosen}", processes)
    s3 = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://{HOST}:{chosen}"}
    import boto3

    boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name=s3["AWS_REGION"],
                 aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=S3_BUCKET)  # fmt: skip
    return s3


def start(processes: dict[str, subprocess.Popen], name: str, argv: list[str], env: dict[str, str]) -> None:
    """Start one process of the cluster in its own process group (Ctrl-C reaches this script only)."""
    processes[name] = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """Stop every started process, workers first: SIGTERM to its group, SIGKILL after STOP_SECONDS."""
    for process in reversed(processes.values()):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in reversed(processes.values()):
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(workers: int, prefect_port: int, scheduler_port: int, s3_port: int | None = None) -> None:
    """Start the server, the scheduler and the workers (and an S3 endpoint with `s3_port`), print how to use
    them, then wait for a signal."""
    api = f"http://{HOST}:{port(prefect_port)}/api"
    scheduler = f"tcp://{HOST}:{port(scheduler_port)}"
    env = {**os.environ, **QUIET_ENV, "PREFECT_API_URL": api}
    processes: dict[str, subprocess.Popen] = {}
    try:
        s3 = start_s3(processes, s3_port) if s3_port is not None else {}
        env.update(s3)
        host, server_port = api.removeprefix("http://").removesuffix("/api").split(":")
        start(processes, "prefect server", [sys.executable, "-m", "prefect", "server", "start", "--host", host,
                                            "--port", server_port], env)  # fmt: skip
        wait_until(lambda: api_ready(api), f"the Prefect server at {api}", processes)
        scheduler_argv = ["--host", HOST, "--port", scheduler.rsplit(":", 1)[1], "--dashboard-address", ":0"]
        start(processes, "dask scheduler", [sys.executable, "-m", "dask", "scheduler", *scheduler_argv], env)
        for i in range(workers):
            worker_argv = [scheduler, "--nthreads", "1", "--no-dashboard", "--name", f"worker-{i}"]
            start(processes, f"dask worker {i}", [sys.executable, "-m", "dask", "worker", *worker_argv], env)
        wait_until(lambda: workers_ready(scheduler, workers), f"{workers} workers at {scheduler}", processes)
        print(f"export PREFECT_API_URL={api}", flush=True)
        if s3:
            print("export " + " ".join(f"{k}={v}" for k, v in sorted(s3.items())), flush=True)
        print(f"--dask {scheduler}", flush=True)
        print(f"a Prefect server, a Dask scheduler and {workers} workers: Ctrl-C stops them", flush=True)
        while True:
            check_alive(processes)
            time.sleep(1)
    finally:
        stop(processes)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m flows.cluster` (what `make cluster` runs)."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.cluster",
        description="Start a local Prefect server, a Dask scheduler and N Dask workers for `--dask`; print the "
        "PREFECT_API_URL and the scheduler address to use; Ctrl-C stops them all.",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, metavar="N", help="Dask workers (default 2)"
    )
    parser.add_argument(
        "--prefect-port",
        type=int,
        default=4200,
        metavar="PORT",
        help="the server's port when free (default 4200)",
    )
    parser.add_argument(
        "--scheduler-port",
        type=int,
        default=8786,
        metavar="PORT",
        help="the scheduler's when free (default 8786)",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help=f"also start a local S3 endpoint (moto_server) with a bucket {S3_BUCKET}, for --lake s3://",
    )
    parser.add_argument(
        "--s3-port",
        type=int,
        default=9000,
        metavar="PORT",
        help="the endpoint's port when free (default 9000)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 after Ctrl-C or SIGTERM, 1 when the cluster could not start or a process died."""
    args = build_parser().parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGTERM takes the Ctrl-C path; SIGINT even when started
        signal.signal(signum, signal.default_int_handler)  # in the background, which ignores it
    try:
        run(args.workers, args.prefect_port, args.scheduler_port, args.s3_port if args.s3 else None)
    except KeyboardInterrupt:
        print("flows.cluster: stopped", flush=True)
        return 0
    except ClusterError as exc:
        print(f"flows.cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
