"""Serve the ingestion flow on a schedule over a drop folder, until stopped.

`python -m flows.serve --watch DIR [--lake DIR|s3://BUCKET/PREFIX] [--interval SECONDS | --cron EXPR]` creates the deployment
`filterlake-ingest/<name>` with the folder and lake as parameters and runs its scheduled runs (one at a time).
Each run prints its counts and one line per failure to stdout. A local file that failed because of what it is
(a bad checkpoint, a bad sidecar, an empty folder) is remembered in $PREFECT_HOME/filterlake-serve/<name>.json
and skipped until it changes, said once (see flows/memory.py for why there and not in the lake).
Prefect's ephemeral API runs no scheduler, so without a configured PREFECT_API_URL this process starts a local
`prefect server start` (127.0.0.1, free port, no UI; log in $PREFECT_HOME/filterlake-server.log) in a session
of its own, out of reach of Ctrl-C: this process stops the runner first and the server last. Ctrl-C, SIGTERM
and SIGHUP stop it cleanly with exit 0 (Ctrl-C in a terminal also interrupts a flow run in progress). That server's scheduler needs SQLAlchemy < 2.1
(Prefect 3.8.8 cannot insert scheduled runs with 2.1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from prefect.client.schemas.schedules import CronSchedule
from prefect.runner import Runner
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from filterlake.lake.location import parse_lake
from flows.ingest import ingest_flow, positive_int
from flows.tasks import add_lake_argument

DEFAULT_INTERVAL = 60.0


def _seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _name(text: str) -> str:
    """argparse type: a deployment name (it also names a file)."""
    if not text or any(c in text for c in "/\\%") or text.startswith("."):
        raise argparse.ArgumentTypeError(f"not a usable deployment name: {text!r} (no /, \\, % or leading .)")
    return text


def _cron(text: str) -> str:
    """argparse type: a cron expression Prefect accepts."""
    try:
        CronSchedule(cron=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid cron expression {text!r}") from exc
    return text


class _Runner(Runner):
    """Prefect's Runner, stopped by SIGTERM and SIGHUP as by a first Ctrl-C: each cancels its serving task."""

    _serving: asyncio.Task | None = None

    async def serve(self) -> None:
        """Run the runner until asyncio.run's Ctrl-C handler or `handle_sigterm` cancels this task."""
        self._serving = asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGHUP):  # `start` sets SIGTERM's again, to handle_sigterm too
            signal.signal(signum, self.handle_sigterm)
        try:
            await self.start()
        finally:
            for signum in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, _interrupt)

    def handle_sigterm(self, *args: object) -> None:
        """Cancel the serving task: the runner stops its runs and polling, then asyncio.run returns."""
        if self._serving is not None and not self._serving.done():
            self._serving.cancel()  # then wake the loop, as asyncio's own SIGINT handler does
            self._serving.get_loop().call_soon_threadsafe(lambda: None)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP outside the runner: unwind like Ctrl-C, so the local server is stopped."""
    raise KeyboardInterrupt


def _check_scheduler() -> None:
    """Refuse early where the local scheduler would silently never create a run (it raises in the server log)."""
    if tuple(int(part) for part in sqlalchemy.__version__.split(".")[:2]) >= (2, 1):
        raise SystemExit(
            f"flows.serve: SQLAlchemy {sqlalchemy.__version__} breaks the scheduler of the local Prefect "
            "server ('Can't evaluate bulk DML statement'); install 'sqlalchemy>=2.0,<2.1'"
        )


@contextlib.contextmanager
def local_server(log_path: Path, timeout: float) -> Iterator[str]:
    """Run `prefect server start` (scheduler on, own session) on a free 127.0.0.1 port; yield its API URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
                "--analytics-off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        print(
            f"filterlake: local Prefect server on {url} (pid {server.pid}; log {log_path})", file=sys.stderr
        )
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise SystemExit(
                    f"flows.serve: the Prefect server exited (code {server.returncode}); see {log_path}"
                )
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"flows.serve: the Prefect server did not start in {timeout:g} s; see {log_path}"
                    )
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or a second Ctrl-C
            server.kill()
            server.wait()


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m flows.serve`: help for every argument, one usage line on errors."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve",
        usage="%(prog)s --watch DIR [options]",
        description="Serve the filterlake ingestion flow as a Prefect deployment that ingests every checkpoint in "
        "a drop folder on a schedule, until stopped (Ctrl-C or SIGTERM). Each run ingests what is new "
        "(checkpoints already in the lake are skipped via their content hash), refreshes the analysis "
        "tables when anything was ingested, records table and markdown artifacts and prints a line of "
        "counts and one line per failure. A bad file fails only itself, and later runs skip it until "
        "it changes. Copy files in under a hidden name (.name) and rename them when complete, or a "
        "run may read a half-copied file (it then fails, and is retried once it is complete). Without "
        "PREFECT_API_URL this process starts a local Prefect server (with its scheduler; the ephemeral "
        "API has none) and stops it on exit; with it, the deployment registers on that server (see "
        "prefect.yaml for work pools).",
    )
    parser.add_argument(
        "--watch", required=True, metavar="DIR", help="drop folder to ingest (created when missing)"
    )
    add_lake_argument(parser)
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--interval",
        type=_seconds,
        metavar="SECONDS",
        help=f"run every SECONDS (default {DEFAULT_INTERVAL:g} unless --cron is given)",
    )
    when.add_argument("--cron", type=_cron, metavar="EXPR", help='cron schedule instead, e.g. "*/15 * * * *"')
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=2,
        metavar="N",
        help="checkpoints processed at once within a run (default 2)",
    )
    parser.add_argument(
        "--name",
        type=_name,
        default="dropbox",
        help="deployment name; also names the failure memory in $PREFECT_HOME (default: dropbox)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m flows.serve`: serve until Ctrl-C, SIGTERM or SIGHUP, then exit 0."""
    args = build_parser().parse_args(argv)
    local = not PREFECT_API_URL.value()
    if local:
        _check_scheduler()
    watch = Path(args.watch).resolve()
    watch.mkdir(parents=True, exist_ok=True)
    found = parse_lake(args.lake)
    lake = found.resolve() if isinstance(found, Path) else found
    memory = PREFECT_HOME.value() / "filterlake-serve" / f"{args.name}.json"
    interval = None if args.cron else args.interval or DEFAULT_INTERVAL
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    print(
        f"filterlake: ingesting {watch} into {lake} "
        f"{f'on cron {args.cron!r}' if args.cron else f'every {interval:g} s'}; stop with Ctrl-C",
        file=sys.stderr,
    )
    try:
        with contextlib.ExitStack() as stack:
            if local:
                timeout = float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
                url = stack.enter_context(
                    local_server(PREFECT_HOME.value() / "filterlake-server.log", timeout)
                )
                stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
            runner = _Runner(name=f"filterlake-{args.name}", limit=1)  # one run at a time: runs never overlap
            parameters = {
                "sources": [str(watch)],
                "lake": str(lake),
                "concurrency": args.concurrency,
                "failure_memory": str(memory),
                "print_summary": True,
            }
            runner.add_deployment(
                ingest_flow.to_deployment(
                    name=args.name, interval=interval, cron=args.cron, parameters=parameters
                )
            )
            asyncio.run(runner.serve())
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM / SIGHUP
        pass
    print("filterlake: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
