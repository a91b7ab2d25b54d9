"""A local working copy of an object lake, for the commands that compute over files (analyze, report, shift):
the bucket's objects as the files of a lake folder, pulled when they changed, and the derived files an analysis
writes pushed back. The base tables in the bucket are written by ingest's commit protocol (object_commit.py)
only; an analysis never PUTs them.

Why a copy: the analysis then runs the local-disk code that is verified against torchconvquality, unchanged,
reading each model's filters from local disk at every pass. The copy is a cache (below `$FILTERLAKE_CACHE`,
default `./.cache`, one folder per endpoint, bucket and prefix): deleting it loses nothing.

The rules:
- *Current*: a file is current when it has the object's size and MD5 (its ETag); a filters object, when it
  has its size and LastModified as mtime (`current`). An unchanged object is never downloaded again.
- *Pull*: objects of committed models only (an orphan of an interrupted write is never copied); a model removed
  from the bucket leaves the copy with all its files.
- *Push*: derived files only, a per-model one only for a committed model. An object the pull saw and the
  analysis removed (the files of a pruned basis, of a removed model) is deleted from the bucket; an object
  another writer PUT after the pull is never deleted.
- *Sharing*: processes of one machine may share a copy (a LocalCluster's workers and the driver): every file
  lands by a rename, and one analysis at a time holds the copy (`exclusive`). Analyses of one bucket on
  different machines each PUT whole, deterministic files; the last `analysis.json` names the current basis.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from filterlake.lake import objects
from filterlake.lake.layout import (
    GLOBS,
    PER_MODEL_TABLES,
    STATE,
    VERSION,
    filters_dir,
    layers_file,
    model_file,
    per_model_derived_files,
    table_files,
)
from filterlake.lake.location import ROOT, ObjectLake, endpoint_url
from filterlake.lake.objects import ObjectInfo
from filterlake.lake.schema import DERIVED_TABLES
from filterlake.lake.writer import flock
from filterlake.resources import cache_dir

TRANSFERS = 8  # objects downloaded or uploaded at once
PER_MODEL = (*PER_MODEL_TABLES, "filters")  # the tables whose objects belong to one model each
ROOT_FILES = (STATE, VERSION)  # the lake's own state files, besides the tables


def working_copy(lake: ObjectLake) -> WorkingCopy:
    """The working copy of an object lake: `<cache>/objects/<endpoint>/<bucket>/<prefix>`."""
    endpoint = urlparse(endpoint_url() or "https://s3.amazonaws.com").netloc.replace(":", "_")
    return WorkingCopy(
        lake, cache_dir().resolve() / "objects" / endpoint / lake.bucket / (lake.prefix or "_")
    )


def table_of(relative: str) -> str | None:
    """The lake table an object belongs to (by the globs of layout.py), or None (a state file, a stray key)."""
    parts = PurePosixPath(relative).parts
    for table, glob in GLOBS.items():
        pattern = PurePosixPath(glob).parts
        if len(parts) == len(pattern) and parts[0] == pattern[0] and PurePosixPath(relative).match(glob):
            return table
    return None


def model_of(relative: str, table: str | None) -> str | None:
    """The model an object of a per-model table belongs to (None for per-basis and shared objects)."""
    if table not in PER_MODEL:
        return None
    path = PurePosixPath(relative)
    return path.parent.name.removeprefix("model_id=") if table == "filters" else path.stem


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Pulled:
    """What a pull did: files downloaded and removed, and every derived object it saw (for `push`)."""

    downloaded: int
    removed: int
    seen: frozenset[str]


@dataclass(frozen=True)
class WorkingCopy:
    """A local lake folder `root` kept in step with the object lake `lake` (picklable: workers get it)."""

    lake: ObjectLake
    root: Path

    def current(self, relative: str, info: ObjectInfo) -> bool:
        """Whether the local file of an object is the object: the same size and the same bytes, by the MD5
        its ETag is (an object's LastModified counts whole seconds: a models row merged twice in one second
        differs). The large filters objects, rewritten only by `ingest --force`, are compared by size and
        mtime (a pull sets it to the object's LastModified), as is an object whose ETag is no MD5 (multipart
        or encrypted)."""
        path = self.root / relative
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_size != info.size:
            return False
        if table_of(relative) == "filters" or not re.fullmatch(r"[0-9a-f]{32}", info.etag):
            return st.st_mtime_ns == info.modified_ns
        return _md5(path) == info.etag

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the copy for one analysis at a time on this machine (an flock beside the copy): a pull while
        another analysis runs would put the bucket's older state file over the one it is about to push."""
        with flock(self.root.parent / f".{self.root.name}.lock", fcntl.LOCK_EX):
            yield

    def fetch(self, found: dict[str, ObjectInfo]) -> int:
        """Download the objects of `found` whose local file is not current; how many."""
        stale = sorted(k for k, info in found.items() if not self.current(k, info))
        if stale:
            with ThreadPoolExecutor(TRANSFERS, thread_name_prefix="filterlake-pull") as pool:
                list(pool.map(lambda k: objects.download(self.lake, k, self.root / k), stale))
        return len(stale)

    def pull(self, filters: bool = True) -> Pulled:
        """Bring the copy in step with the bucket: every object of the committed models (their filters only
        when `filters`) and the shared derived objects; the files of models gone from the bucket removed."""
        objects.require_bucket(self.lake)
        found = objects.inventory(self.lake, "")
        tables = {k: table_of(k) for k in found}
        committed = {PurePosixPath(k).stem for k, t in tables.items() if t == "models"}
        wanted = {
            k: info
            for k, info in found.items()
            if (tables[k] is not None or k in ROOT_FILES)
            and model_of(k, tables[k]) in (None, *committed)
            and (filters or tables[k] != "filters")
        }
        self.root.mkdir(parents=True, exist_ok=True)
        downloaded = self.fetch(wanted)
        removed = self._remove_models_gone(committed)
        seen = frozenset(k for k in found if tables[k] in DERIVED_TABLES or k == STATE)
        return Pulled(downloaded, removed, seen)

    def _remove_models_gone(self, committed: set[str]) -> int:
        """Remove every local file of a model the bucket no longer holds; how many files."""
        gone = {p.stem for p in table_files(self.root, "models")} - committed
        paths = [
            path
            for m in sorted(gone)
            for path in [
                model_file(self.root, m),
                layers_file(self.root, m),
                *filters_dir(self.root, m).glob("*.parquet"),
                *per_model_derived_files(self.root, m),
            ]
            if path.exists()
        ]
        for path in paths:
            path.unlink(missing_ok=True)
        for m in gone:
            with contextlib.suppress(OSError):
                filters_dir(self.root, m).rmdir()
        return len(paths)

    def model_objects(self, model_id: str, folders: Iterable[str]) -> dict[str, ObjectInfo]:
        """The objects of one model: its models row, layers, filters, and its files in the per-model derived
        `folders` (e.g. `histograms/basis=B/spec=S`), by HEADs and one listing (no listing of a whole table)."""
        keys = [str(model_file(ROOT, model_id)), str(layers_file(ROOT, model_id))]
        keys += [f"{folder}/{model_id}.parquet" for folder in folders]
        found = {k: info for k in keys if (info := objects.head(self.lake, k)) is not None}
        return {**found, **objects.inventory(self.lake, filters_dir(ROOT, model_id))}

    def pull_model(self, model_id: str, folders: Iterable[str]) -> dict[str, ObjectInfo]:
        """Make one model's files current (a worker about to derive it); the objects found."""
        found = self.model_objects(model_id, folders)
        self.fetch(found)
        return found

    def push_files(
        self, paths: Collection[Path], remote: dict[str, ObjectInfo] | None = None
    ) -> dict[str, tuple[ObjectInfo, bool]]:
        """PUT these local files of the copy whose object differs (the objects from `remote`, a listing, else a
        HEAD each); returns each file's object and whether it was uploaded."""

        def upload(path: Path) -> tuple[str, ObjectInfo, bool]:
            relative = path.relative_to(self.root).as_posix()
            info = remote.get(relative) if remote is not None else objects.head(self.lake, relative)
            if info is not None and self.current(relative, info):
                return relative, info, False
            objects.put(self.lake, relative, path)
            return relative, ObjectInfo(path.stat().st_size, datetime.now(UTC), _md5(path)), True

        with ThreadPoolExecutor(TRANSFERS, thread_name_prefix="filterlake-push") as pool:
            return {key: (info, put) for key, info, put in pool.map(upload, sorted(paths))}

    def push_model(self, model_id: str) -> dict[str, ObjectInfo]:
        """PUT one model's derived files that changed (a worker that derived it); the objects of them all."""
        pushed = self.push_files(per_model_derived_files(self.root, model_id))
        return {key: info for key, (info, _) in pushed.items()}

    def derived_files(self) -> list[Path]:
        """Every derived file of the copy (per-model ones of committed models only) and its analysis state."""
        committed = {p.stem for p in table_files(self.root, "models")}
        files = [
            path
            for table in DERIVED_TABLES
            for path in table_files(self.root, table)
            if model_of(path.relative_to(self.root).as_posix(), table) in (None, *committed)
        ]
        state = self.root / STATE
        return files + ([state] if state.exists() else [])

    def push(self, seen: Collection[str] = ()) -> tuple[int, int]:
        """PUT every derived file that changed; delete the objects of `seen` (a pull's) that the copy no longer
        holds. (uploaded, deleted)."""
        remote = objects.inventory(self.lake, "")
        uploaded = sum(put for _, put in self.push_files(self.derived_files(), remote).values())
        gone = sorted(k for k in seen if k in remote and not (self.root / k).exists())
        for key in gone:
            objects.delete(self.lake, key)
        return uploaded, len(gone)
