"""The object-store operations of an object lake, each retried on transient errors and failing in one line.

What the commit protocol (object_commit.py) builds on: a whole-object PUT (atomic), create-only PUTs
(`If-None-Match: *`) and replace-if-unchanged PUTs (`If-Match: <etag>`), strongly consistent listings, GETs
with the object's ETag. Transient errors (connection refused or reset, timeouts, HTTP 5xx, throttling, the 409
of a conditional write racing another) are retried with exponential backoff for `location.retry_seconds()`;
then, and for every other error (missing bucket, rejected credentials, access denied), a LakeError names the
object's `s3://` URI and the reason.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from filterlake.errors import LakeError
from filterlake.lake.location import ObjectLake, client, endpoint_url, retry_seconds

T = TypeVar("T")
PRECONDITION_FAILED = "PreconditionFailed"
# retried like an unreachable endpoint: throttling, and S3's 409 for a conditional write racing another one
RETRIED = (
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ConditionalRequestConflict",
)
CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")
FIRST_DELAY = 0.2
MAX_DELAY = 4.0


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    return int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _transient(exc: Exception) -> bool:
    """Whether an error is worth retrying: the endpoint unreachable or overloaded, not a refusal."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        return _code(exc) in RETRIED or _status(exc) >= 500
    return isinstance(exc, (ConnectionError, HTTPClientError))


def _reason(exc: Exception, lake: ObjectLake) -> str:
    """A one-line reason, with what to do, for an error of the store."""
    from botocore.exceptions import ClientError, NoCredentialsError

    code = _code(exc)
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    if code in ("NoSuchBucket", "404", "NotFound"):  # HEAD of a bucket answers a bare 404
        return f"no such bucket {lake.bucket!r} (create it first; filterlake does not create buckets)"
    if code in CREDENTIALS:
        return (
            f"credentials rejected ({code}: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
        )
    if code in ("AccessDenied", "403", "Forbidden"):
        return (
            "access denied (credentials rejected, or not allowed on this bucket: check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
        )
    if _transient(exc):
        return f"object store at {endpoint_url() or 'AWS'} unreachable ({str(exc).splitlines()[0][:160]})"
    if isinstance(exc, ClientError):
        return f"{code or _status(exc)}: {str(exc).splitlines()[0][:160]}"
    return str(exc).splitlines()[0][:200]


def call(
    lake: ObjectLake, relative: str | PurePosixPath, operation: Callable[[], T], retry: bool = True
) -> T:
    """Run one store operation on `relative` (a path in the lake): transient errors retried with backoff for
    `retry_seconds()`, then every failure a LakeError naming the object; botocore's ClientError of a
    precondition or a missing key is passed on to the caller, who expects them."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + retry_seconds()
    delay = FIRST_DELAY
    while True:
        try:
            return operation()
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _code(exc) in (PRECONDITION_FAILED, "NoSuchKey"):
                raise
            if not (retry and _transient(exc) and time.monotonic() + delay < deadline):
                what = f" after {retry_seconds():g} s of retries" if retry and _transient(exc) else ""
                raise LakeError(f"{lake.url(relative)}: {_reason(exc, lake)}{what}") from None
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_DELAY)


def require_bucket(lake: ObjectLake) -> ObjectLake:
    """The lake when its bucket exists and the credentials reach it; LakeError naming the lake otherwise."""
    call(lake, "", lambda: client().head_bucket(Bucket=lake.bucket))
    return lake


def get(lake: ObjectLake, relative: str | PurePosixPath) -> tuple[bytes, str] | None:
    """The bytes and ETag of an object of the lake, or None when there is none."""
    from botocore.exceptions import ClientError

    def read() -> tuple[bytes, str]:
        answer = client().get_object(Bucket=lake.bucket, Key=lake.key(relative))
        return answer["Body"].read(), answer["ETag"]

    try:
        return call(lake, relative, read)
    except ClientError as exc:
        if _code(exc) == "NoSuchKey":
            return None
        raise


def exists(lake: ObjectLake, relative: str | PurePosixPath) -> bool:
    """Whether the lake holds an object at `relative`."""
    from botocore.exceptions import ClientError

    def head() -> bool:
        try:
            client().head_object(Bucket=lake.bucket, Key=lake.key(relative))
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    return call(lake, relative, head)


def put(
    lake: ObjectLake,
    relative: str | PurePosixPath,
    body: bytes | Path,
    if_none_match: bool = False,
    if_match: str | None = None,
) -> bool:
    """PUT one whole object (atomic) from bytes or streamed from a local file; False when its condition fails:
    `if_none_match` creates it only when absent, `if_match` replaces it only while its ETag is still that one."""
    from botocore.exceptions import ClientError

    conditions: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
    if if_match is not None:
        conditions["IfMatch"] = if_match

    def upload() -> None:
        if isinstance(body, bytes):
            client().put_object(Bucket=lake.bucket, Key=lake.key(relative), Body=body, **conditions)
            return
        with open(body, "rb") as handle:  # opened again by every attempt
            client().put_object(Bucket=lake.bucket, Key=lake.key(relative), Body=handle, **conditions)

    try:
        call(lake, relative, upload)
    except ClientError as exc:
        if _code(exc) == PRECONDITION_FAILED:
            return False
        raise
    return True


def delete(lake: ObjectLake, relative: str | PurePosixPath) -> None:
    """Remove one object (nothing when it is absent)."""
    call(lake, relative, lambda: client().delete_object(Bucket=lake.bucket, Key=lake.key(relative)))


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says of one object: its size, when it was last written, and its ETag (the MD5 of its
    bytes for a single PUT; quotes removed)."""

    size: int
    modified: datetime
    etag: str = ""

    @property
    def modified_ns(self) -> int:
        """The last-modified time in integer nanoseconds since the epoch, exactly (a local copy's mtime)."""
        return (self.modified - EPOCH) // timedelta(microseconds=1) * 1000


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def inventory(lake: ObjectLake, relative: str | PurePosixPath) -> dict[str, ObjectInfo]:
    """Every object below `relative` (a folder of the lake, "" for all of it): its path relative to the lake ->
    its size and last-modified time."""
    start = lake.key(relative).rstrip("/") + "/" if str(relative) else lake.key("x")[:-1]
    cut = len(lake.key("x")) - 1  # the length of the lake's own prefix with its slash

    def pages() -> dict[str, ObjectInfo]:
        found = {}
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=start):
            found.update(
                {
                    o["Key"][cut:]: ObjectInfo(o["Size"], o["LastModified"], o["ETag"].strip('"'))
                    for o in page.get("Contents", [])
                }
            )
        return found

    return call(lake, relative, pages)


def listing(lake: ObjectLake, relative: str | PurePosixPath) -> dict[str, datetime]:
    """Every object below `relative` (a folder of the lake): its path relative to the lake -> last modified."""
    return {key: info.modified for key, info in inventory(lake, relative).items()}


def head(lake: ObjectLake, relative: str | PurePosixPath) -> ObjectInfo | None:
    """The size and last-modified time of one object, or None when there is none."""
    from botocore.exceptions import ClientError

    def ask() -> ObjectInfo | None:
        try:
            answer = client().head_object(Bucket=lake.bucket, Key=lake.key(relative))
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return ObjectInfo(answer["ContentLength"], answer["LastModified"], answer["ETag"].strip('"'))

    return call(lake, relative, ask)


def folders(lake: ObjectLake, relative: str | PurePosixPath) -> list[str]:
    """The folders directly below `relative` (a folder of the lake), as paths relative to the lake."""
    start = lake.key(relative).rstrip("/") + "/"
    cut = len(lake.key("x")) - 1

    def pages() -> list[str]:
        found = []
        paginator = client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=lake.bucket, Prefix=start, Delimiter="/"):
            found += [p["Prefix"][cut:].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(found)

    return call(lake, relative, pages)


def download(lake: ObjectLake, relative: str | PurePosixPath, target: Path) -> ObjectInfo | None:
    """Stream one object into the file `target` (through a temporary sibling and a rename, so `target` is
    whole or absent) with the object's last-modified time as its mtime; None when there is no such object."""
    from botocore.exceptions import ClientError

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")

    def fetch() -> ObjectInfo:
        answer = client().get_object(Bucket=lake.bucket, Key=lake.key(relative))
        with open(tmp, "wb") as out:
            out.writelines(answer["Body"].iter_chunks(1 << 20))
        return ObjectInfo(answer["ContentLength"], answer["LastModified"], answer["ETag"].strip('"'))

    try:
        info = call(lake, relative, fetch)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, ClientError) and _code(exc) == "NoSuchKey":
            return None
        raise
    os.utime(tmp, ns=(info.modified_ns, info.modified_ns))
    os.replace(tmp, target)
    return info
