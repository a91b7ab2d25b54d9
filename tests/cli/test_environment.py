"""Bad environments get one line and lose nothing: a lake that is a file or a typo, a read-only lake, a full
disk, SIGTERM and SIGHUP. Read-only folders and a small full disk are real mounts in a private mount namespace
(`unshare -rm`), so the tests hold when they run as root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from filterlake.lake.check import check_lake
from filterlake.lake.layout import STAGING, committed_ids
from tests.cli.test_cli import FILTERLAKE, run
from tests.conftest import REPO

NAMESPACE = ["unshare", "-rm", "sh", "-c"]


def in_namespace(script: str, *args, cwd=REPO) -> subprocess.CompletedProcess:
    """Run `script` (with $1... = args) as root of a private user and mount namespace."""
    return subprocess.run(
        [*NAMESPACE, script, "sh", *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False
    )


def read_only(lake: Path, *command) -> subprocess.CompletedProcess:
    """`filterlake COMMAND` with `lake` mounted read-only."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return in_namespace(script, lake, *FILTERLAKE, *command)


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("filterlake: error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), done.stderr


@pytest.fixture(scope="module")
def analysed_lake(corpus_lake, tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("analysed") / "lake"
    shutil.copytree(corpus_lake, lake)
    done = run("report", "--lake", lake, "--out", lake.parent / "first-report", "-q")  # analyses all it shows
    assert done.returncode == 0, done.stderr
    return lake


def test_a_lake_that_is_a_file_or_a_typo(tmp_path):
    """Regression: a file as --lake ended in NotADirectoryError; a typo'd lake listed an empty table, exit 0."""
    as_file = tmp_path / "lake"
    as_file.write_text("not a lake")
    for command in (("models",), ("ingest", REPO / "README.md"), ("analyze", "-q"), ("sql", "SELECT 1")):
        one_line_error(run(*command, "--lake", as_file), str(as_file), "not a lake folder (it is a file)")
    missing = tmp_path / "does_not_exist"
    for command in (
        ("models",),
        ("sql", "SELECT count(*) FROM models"),
        ("analyze", "-q"),
        ("shift", "--group-by", "domain"),
    ):
        one_line_error(run(*command, "--lake", missing), str(missing), "no such lake folder")
    assert not missing.exists()


def test_a_read_only_lake_serves_every_reading_command(analysed_lake, tmp_path, corpus):
    """Regression: check --no-repair opened the lock for writing; shift and report staged files unchanged."""
    before = sorted(p.relative_to(analysed_lake) for p in analysed_lake.rglob("*"))
    for command in (
        ("models",),
        ("sql", "SELECT count(*) FROM layer_stats"),
        ("check", "--no-repair"),
        ("shift", "--group-by", "domain", "--format", "csv"),
        ("ingest", corpus / "mtcnn/pnet.pt"),
        ("report", "--out", tmp_path / "report", "-q"),
    ):
        done = read_only(analysed_lake, *command, "--lake", analysed_lake)
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert (tmp_path / "report" / "index.html").is_file()
    assert sorted(p.relative_to(analysed_lake) for p in analysed_lake.rglob("*")) == before


def test_a_read_only_lake_that_needs_writing_says_so(analysed_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(analysed_lake, lake)
    done = read_only(
        lake, "analyze", "--group-by", "task", "-q", "--lake", lake
    )  # a new grouping: a new file
    one_line_error(done, "Read-only file system", "needs to write")
    done = read_only(lake, "ingest", REPO / "tests", "--lake", lake)
    assert "Traceback" not in done.stderr


def test_report_out_naming_a_file_and_bad_numbers(analysed_lake, tmp_path):
    target = tmp_path / "report.html"
    target.write_text("mine")
    one_line_error(run("report", "--lake", analysed_lake, "--out", target, "-q"), str(target))
    assert target.read_text() == "mine"
    for args, word in (
        (("shift", "--group-by", "domain", "--test", "x", "--permutations", "-5"), "at least 1"),
        (("shift", "--group-by", "domain", "--test", "x"), "go together"),
        (("shift", "--group-by", "domain", "--permutations", "10"), "go together"),
        (("analyze", "--sparsity-eps", "1.5"), "strictly between 0 and 1"),
        (("ingest",), "give a SOURCE"),
    ):
        done = run(*args, "--lake", analysed_lake)
        assert done.returncode == 2 and word in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"usage: filterlake {args[0]}")  # the subcommand's own usage


def test_a_full_disk_is_one_line_and_leaves_a_consistent_lake(corpus, tmp_path):
    lake = tmp_path / "small"
    lake.mkdir()
    big = corpus / "resnet56_cifar10/resnet56-4bfd9763.th"
    script = (
        'mount -t tmpfs -o size=600k tmpfs "$1" || exit 99; lake="$1"; shift; "$@"; code=$?; '
        'echo LEFT:; find "$lake" -path "*/_staging/*" -o -name "*.parquet"; exit $code'
    )
    done = in_namespace(script, lake, *FILTERLAKE, "ingest", big, "--lake", lake)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "no space left on device" in line]
    assert line.startswith(f"failed {big.resolve()}: {lake}: no space left on device"), line
    assert (
        done.stdout.split("LEFT:", 1)[1].split() == []
    )  # inside the full mount: nothing staged, no models row


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_take_the_ctrl_c_path(corpus, tmp_path, signum):
    """Regression: SIGTERM printed nothing, exited 143 and left _staging/ behind."""
    lake = tmp_path / "lake"
    process = subprocess.Popen(
        [*FILTERLAKE, "ingest", corpus, "--lake", lake],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while not any((lake / STAGING).glob("*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert f"stopped by {signal.Signals(signum).name}; the lake keeps only whole models" in stderr
    assert "Traceback" not in stderr
    assert not any((lake / STAGING).glob("*"))
    assert check_lake(lake, repair_leftovers=False).ok


def test_every_writing_command_cleans_dead_writers_leftovers(analysed_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(analysed_lake, lake)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for command in (
        ("analyze", "-q"),
        ("shift", "--group-by", "domain"),
        ("report", "--out", tmp_path / "r", "--permutations", "20", "-q"),
    ):
        stale = lake / STAGING / f"{dead}-left"
        stale.mkdir(parents=True)
        (stale / "half.parquet").write_bytes(b"half")
        assert run(*command, "--lake", lake).returncode == 0
        assert not stale.exists(), command
    assert committed_ids(lake) == committed_ids(analysed_lake)
    assert os.listdir(lake / STAGING) == []
