"""Every command of README.md works verbatim: the shell blocks run in README order from a folder laid out like
the repository (its .venv, sql/ and catalog/, with ../shared beside it); each `make` target they name exists,
and `make report`, the main job, runs for real in a copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO

# Targets that CI runs itself (.ci/run: lint, test, bench) or that run for hours or for ever (bench-large,
# serve) or rewrite the project's constraints (lock): their README lines are checked with `make -n`.
DRY_RUN_TARGETS = ("test", "bench", "bench-large", "serve", "lock", "ingest")


def readme_commands() -> list[str]:
    """The command lines of README.md's ```sh blocks, in order, without their trailing comments."""
    blocks = re.findall(
        r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.DOTALL | re.MULTILINE
    )
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def layout_like_the_repository(root: Path) -> Path:
    """A folder with the repository's venv, sql/ and catalog/ and ../shared beside it; returns the folder."""
    checkout = root / "checkout"
    checkout.mkdir()
    for name in (".venv", "sql", "catalog", "flows", "Makefile"):
        (checkout / name).symlink_to(REPO / name)
    (root / "shared").symlink_to(CORPUS.parent)
    return checkout


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FILTERLAKE_CACHE": str(REPO / ".cache")}
    env.pop("FILTERLAKE_LAKE", None)
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )


def test_the_readme_has_commands_and_each_make_target_exists():
    commands = readme_commands()
    assert len(commands) > 15
    for command in commands:
        if command.startswith("make "):
            target = command.split()[1]
            done = subprocess.run(
                ["make", "-n", *command.split()[1:]], cwd=REPO, capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, (command, done.stderr)
            assert target in (*DRY_RUN_TARGETS, "report"), f"{command}: say in this test how it is run"


@pytest.mark.slow
def test_every_readme_command_runs_verbatim(tmp_path):
    checkout = layout_like_the_repository(tmp_path)
    for command in readme_commands():
        if command.startswith("make "):
            continue  # make targets: the other tests here
        done = run(command, checkout)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, command
    assert (checkout / "myreport" / "index.html").is_file() and (checkout / "lake" / "models").is_dir()


@pytest.mark.slow
@pytest.mark.network
def test_make_report_from_a_copy_of_the_repository(tmp_path):
    """`make report`, the main job, in a copy of the tracked files (the venv is the repository's)."""
    copy = tmp_path / "filterlake"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)  # mtimes kept: make sees the venv as up to date
    (copy / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "shared").symlink_to(CORPUS.parent)
    done = run("make report", copy)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (copy / "report" / "index.html").is_file() and (copy / "report" / "summary.md").is_file()
    assert "medical" in (copy / "report" / "summary.md").read_text()
