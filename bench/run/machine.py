"""What a run ran on: cores, CPU, memory, load average, library versions, the commit (and local changes)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.paths import REPO


def _commit() -> str:
    """The short commit of the repository, marked when filterlake/ has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "filterlake"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return commit + ("+uncommitted changes in filterlake/" if dirty else "")
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """The machine and software of this run (recorded with the results; the load average is sampled now)."""
    import duckdb
    import numpy
    import pyarrow

    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor(),
    )
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "memory_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
        "torch": torch_version,
        "platform": platform.platform(),
        "git_commit": _commit(),
    }
