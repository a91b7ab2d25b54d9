"""The README's DuckDB CLI recipe with the real `duckdb` binary (the duckdb-cli package): it loads every view on
an empty, an ingested-only and an analysed lake, run verbatim, and sql/init.sql works read from any folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from filterlake.derived.analyze import analyze
from filterlake.lake.init_sql import view_names
from tests.conftest import REPO

DUCKDB = Path(sys.executable).with_name("duckdb")
COUNTS = "SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM filters), (SELECT count(*) FROM layer_stats);"


def readme_recipe() -> str:
    """The README's line that starts the DuckDB CLI with the views (the test runs exactly this)."""
    [line] = [
        line
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith(".venv/bin/duckdb -cmd")
    ]
    return line.split("  #")[0].strip()


def run_cli(command: str, cwd: Path, queries: str) -> subprocess.CompletedProcess:
    """`command` in a shell in `cwd`, with `duckdb` the venv's binary and the queries on stdin."""
    done = subprocess.run(
        ["bash", "-c", command],
        input=queries,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": f"{DUCKDB.parent}:/usr/bin:/bin"},
        check=False,
        timeout=120,
    )
    assert done.returncode == 0 and "Error" not in done.stderr + done.stdout, done.stderr + done.stdout
    return done


def numbers(output: str) -> list[int]:
    """The integers of `-list` output (cells separated by |)."""
    return [int(cell) for line in output.splitlines() for cell in line.split("|") if cell.strip().isdigit()]


@pytest.fixture(scope="module")
def lakes(corpus_lake, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-lakes")
    (root / "empty").mkdir()
    shutil.copytree(corpus_lake, root / "ingested")
    shutil.copytree(corpus_lake, root / "analysed")
    analyze(root / "analysed", "medical", ("domain",))
    return {name: root / name for name in ("empty", "ingested", "analysed")}


@pytest.mark.parametrize(
    "kind,expected", [("empty", [0, 0, 0]), ("ingested", [17, 445633, 0]), ("analysed", [17, 445633, 371])]
)
def test_the_readme_recipe_verbatim_on_every_kind_of_lake(lakes, tmp_path, kind, expected):
    """Regression: -init ran before -cmd (NULL lake), init.sql aborted on missing layer_stats and read other files
    relative to the repository root."""
    root = tmp_path / "checkout"
    (root / "sql").mkdir(parents=True)
    shutil.copy(REPO / "sql" / "init.sql", root / "sql" / "init.sql")  # only init.sql: it reads nothing else
    shutil.copytree(lakes[kind], root / "lake")
    (root / ".venv").symlink_to(REPO / ".venv")
    done = run_cli(f"{readme_recipe()} -list -noheader", root, COUNTS)
    assert numbers(done.stdout) == expected


def test_init_sql_from_another_folder_loads_every_view(lakes, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = (
        f'duckdb -cmd "SET VARIABLE lake = \'{lakes["analysed"]}\'" -cmd ".read {REPO / "sql" / "init.sql"}"'
        " -list -noheader"
    )
    queries = "".join(f"SELECT count(*) FROM {view};\n" for view in view_names())
    done = run_cli(command, elsewhere, queries)
    assert len(numbers(done.stdout)) == len(view_names())
    assert numbers(run_cli(command, elsewhere, COUNTS).stdout) == [17, 445633, 371]
