"""Commands that need no checkpoint reader start without importing the heavy libraries (a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from filterlake.ingest import ingest
from tests.conftest import REPO

HEAVY = ("torch", "onnx", "prefect", "matplotlib", "pandas", "h5py", "huggingface_hub")
RUN = """
import runpy, sys
sys.argv = ["filterlake", *sys.argv[1:]]
try:
    runpy.run_module("filterlake", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print(sorted(m for m in {heavy} if m in sys.modules))
"""


@pytest.fixture(scope="module")
def small_lake(corpus, tmp_path_factory):
    lake = tmp_path_factory.mktemp("startup") / "lake"
    ingest([str(corpus / "resnet20_cifar10")], lake)
    return lake


@pytest.mark.parametrize(
    "command",
    [["sql", "SELECT count(*) FROM models"], ["models"], ["check", "--no-repair"], ["--help"]],
    ids=lambda c: c[0],
)
def test_commands_without_a_checkpoint_reader_import_no_heavy_library(small_lake, command):
    args = command if command == ["--help"] else [*command, "--lake", str(small_lake)]
    done = subprocess.run(
        [sys.executable, "-c", RUN.format(heavy=HEAVY), *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_help_imports_no_array_library():
    """`--help` and argument errors answer before numpy, pyarrow or DuckDB load (0.1 s instead of 0.3 s)."""
    arrays = ("numpy", "pyarrow", "duckdb", *HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", RUN.format(heavy=arrays), "analyze", "--help"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
