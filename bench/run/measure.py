"""How a stage is measured: in a child process of its own (peak RSS from wait4, wall and CPU time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bench.paths import OUT, REPO


def warm_up() -> None:
    """Load pyarrow's Parquet writer and zstd codec once (lazy initialisation is not throughput)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"w": pa.array([0.0], pa.float32())}), io.BytesIO(), compression="zstd")


def disk_usage(path: Path) -> int:
    """Bytes of all files below `path` (files vanishing meanwhile are skipped)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def run_stage(
    name: str, *args: str | Path, env: dict[str, str] | None = None, unset: Collection[str] = ()
) -> dict[str, Any]:
    """Run one stage in a child process; its result plus the child's peak RSS (wait4) and wall time. The child
    inherits this process's environment with `env` added and the variables named in `unset` removed."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("r", suffix=".json", dir=OUT, delete=False) as tmp:
        result_file = Path(tmp.name)
    cmd = [sys.executable, "-m", "bench.run", "stage", name, *map(str, args), "--result", str(result_file)]
    start = time.perf_counter()
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, env=environment)
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    try:
        if child.returncode != 0:
            raise RuntimeError(f"stage {name} failed with exit code {child.returncode}: {' '.join(cmd)}")
        result = json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)
    result.update(
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        wall_s=round(wall, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
    )
    return result
