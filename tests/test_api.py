"""The tiny public API of `filterlake`: every name resolves to the stage function it stands for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import filterlake


@pytest.mark.parametrize("name", [n for n in filterlake.__all__ if n != "__version__"])
def test_public_names_resolve(name):
    assert callable(getattr(filterlake, name))


def test_importing_filterlake_imports_no_reader_or_engine():
    script = (
        "import sys, filterlake; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'onnx', 'prefect', 'duckdb', 'scipy')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    with pytest.raises(AttributeError):
        filterlake.no_such_name  # noqa: B018


def test_all_lists_exactly_the_api():
    assert sorted(filterlake.__all__) == sorted(["__version__", *filterlake._API])
