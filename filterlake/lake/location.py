"""Where a lake is: a local folder (a plain path or `file:///...`) or a prefix of an S3-compatible bucket
(`s3://BUCKET/PREFIX`), from `--lake` or `$FILTERLAKE_LAKE`.

An object lake has exactly the layout of a local one (layout.py builds its keys: `layout.model_file(ROOT, m)`
is the key of a model's row below the prefix), so stock DuckDB, polars and pyarrow read it as they read a
folder. Endpoint, region and credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`,
`AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

# the commands that take an s3:// lake (the others refuse one in a line naming these)
OBJECT_LAKE_COMMANDS = (
    "ingest",
    "import",
    "models",
    "sql",
    "check",
    "remove",
    "analyze",
    "shift",
    "report",
    "basis",
)
ROOT = Path()  # layout.py's functions called on ROOT give a table file's path relative to the lake
RETRY_SECONDS = "FILTERLAKE_S3_RETRY_SECONDS"  # how long transient endpoint errors are retried (default 30)
ORPHAN_GRACE_SECONDS = "FILTERLAKE_S3_ORPHAN_GRACE_SECONDS"  # age before an orphan object is removed (3600)


@dataclass(frozen=True)
class ObjectLake:
    """A lake below `prefix` in `bucket` of an S3-compatible store (picklable: worker processes get it)."""

    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, relative: str | PurePosixPath) -> str:
        """The object key of a path relative to the lake (as layout.py builds them on ROOT)."""
        return str(PurePosixPath(self.prefix) / str(relative)) if self.prefix else str(relative)

    def url(self, relative: str | PurePosixPath = "") -> str:
        """`s3://bucket/key` of a path relative to the lake (the lake itself for "")."""
        return f"s3://{self.bucket}/{self.key(relative)}" if str(relative) else self.uri

    def __str__(self) -> str:
        return self.uri


Lake = Path | ObjectLake


def parse_lake(given: str | Path | None) -> Lake:
    """`--lake` if given, else `$FILTERLAKE_LAKE`, else `./lake`: a Path, or an ObjectLake for `s3://`.

    LakeError for another scheme or an invalid bucket name (one line naming the URI)."""
    from filterlake.errors import LakeError

    text = str(given or os.environ.get("FILTERLAKE_LAKE") or "lake")
    if "://" not in text:
        return Path(text)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme != "s3":
        raise LakeError(
            f"{text}: unsupported lake location (give a folder, file:///PATH or s3://BUCKET/PREFIX)"
        )
    if len(parsed.netloc) < 3:
        raise LakeError(f"{text}: not a bucket name (S3 bucket names have 3 to 63 characters)")
    return ObjectLake(parsed.netloc, parsed.path.strip("/"))


def endpoint_url() -> str | None:
    """The endpoint of the S3-compatible store: `$AWS_ENDPOINT_URL_S3`, else `$AWS_ENDPOINT_URL`, else AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def retry_seconds() -> float:
    """How long transient endpoint errors are retried before the operation fails."""
    return float(os.environ.get(RETRY_SECONDS) or 30)


def orphan_grace_seconds() -> float:
    """How old an object without its models row must be before repair removes it (see object_commit.py)."""
    return float(os.environ.get(ORPHAN_GRACE_SECONDS) or 3600)


@cache
def _client(endpoint: str | None, region_name: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},  # objects.py retries, bounded by retry_seconds()
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region_name, config=config)


def client() -> Any:
    """The boto3 S3 client of the environment's endpoint (conditional PUTs, listings, deletes)."""
    return _client(endpoint_url(), region())


@cache
def _fsspec(endpoint: str | None, region_name: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        use_listings_cache=False,  # its listing cache goes stale after writes by other clients
        skip_instance_cache=True,
        endpoint_url=endpoint,
        client_kwargs={"region_name": region_name},
    )


def fsspec_filesystem() -> Any:
    """The s3fs filesystem of the environment's endpoint, the one DuckDB connections read an object lake by."""
    return _fsspec(endpoint_url(), region())
