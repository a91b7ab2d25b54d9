"""Checkpoints at http(s) URLs: downloaded once into a cache, checksum-checked when one is given."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from filterlake.errors import SourceError, TransientSourceError
from filterlake.lake.files import file_sha256


def fetch_url(url: str, cache_dir: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` into `cache_dir/urls/<hash of url>/<file name>` (reused when present and valid)."""
    name = PurePosixPath(urlparse(url).path).name or "download"
    target = cache_dir / "urls" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file() and (sha256 is None or file_sha256(target) == sha256.lower()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        error = TransientSourceError if exc.code >= 500 else SourceError
        raise error(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise TransientSourceError(f"{url}: download failed ({getattr(exc, 'reason', exc)})") from exc
    if sha256 is not None:
        digest = file_sha256(part)
        if digest != sha256.lower():
            part.unlink(missing_ok=True)
            raise SourceError(
                f"{url}: sha256 {digest} does not match the catalog's {sha256.lower()}; not ingested"
            )
    part.replace(target)
    return target
