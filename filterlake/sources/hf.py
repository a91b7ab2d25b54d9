"""Models on the Hugging Face Hub: `hf://ORG/NAME[@REVISION][/PATH]` and catalog entries with `hf`.

Resolving a repository (discovery) pins its revision to a commit, lists its files (the Hub's list, or the
cached snapshot under HF_HUB_OFFLINE=1), chooses its weight files and reads its model card and config.json for
metadata. Before any weight is downloaded, safetensors headers are read with HTTP range requests, so a model
with no 3x3 convolution is passed over, said so, with nothing downloaded. Downloading (fetch) puts the chosen
files into huggingface_hub's own cache at that commit. Hub and network errors become one-line SourceErrors
naming the source; network failures and HTTP 5xx are TransientSourceErrors, worth a retry.

The calls to huggingface_hub and the mapping of its errors are in `hf_client.py`, the metadata read from the
model card and config.json in `hf_card.py`.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import yaml

from filterlake.errors import SourceError
from filterlake.extract import skip_reason
from filterlake.readers.base import CHANNEL_FIRST, CHANNEL_LAST, ConvTensor
from filterlake.readers.safetensors import FLOATS
from filterlake.sources import hf_client as hub
from filterlake.sources.hf_card import front_matter, repo_metadata

SCHEME = "hf://"
INDEX_SUFFIX = ".safetensors.index.json"
PYTORCH_WEIGHTS = "pytorch_model.bin"
CARD, CONFIG = "README.md", "config.json"
NO_3X3 = "no 3x3 convolution in the safetensors header; nothing downloaded"


def hub_uri(repo: str, revision: str | None = None, path: str | None = None) -> str:
    """`hf://ORG/NAME[@REVISION][/PATH]`, as named on the command line and recorded in `models.source_uri`."""
    at = f"@{quote(revision, safe='')}" if revision else ""
    return f"{SCHEME}{repo}{at}" + (f"/{path}" if path else "")


@dataclass(frozen=True)
class HubRef:
    """A repository as the user names it: revision (None: the default branch) and the files picked, if any."""

    repo: str
    revision: str | None = None
    files: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return hub_uri(self.repo, self.revision, self.files[0] if len(self.files) == 1 else None)

    @property
    def spec(self) -> dict[str, Any]:
        """The `Source.spec` of this repository while no model of it is known (a repository that failed)."""
        return {
            "hf": self.repo,
            "revision": self.revision,
            "file": self.files[0] if len(self.files) == 1 else None,
        }


@dataclass(frozen=True)
class HubModel:
    """One model of a repository: its spec (repo, commit, weight file), metadata from the repository, and why
    it is passed over (`problem`) or what to warn about (`notes`)."""

    spec: dict[str, Any]
    metadata: dict[str, Any]
    problem: str | None = None
    notes: tuple[str, ...] = ()


def parse_uri(uri: str) -> HubRef:
    """Repository, revision and path of `hf://ORG/NAME[@REVISION][/PATH]` (a '/' in a revision: %2F)."""
    org, _, rest = uri.removeprefix(SCHEME).partition("/")
    name, _, path = rest.partition("/")
    name, _, revision = name.partition("@")
    if not org or not name:
        raise SourceError(f"{uri}: not a Hub model; expected hf://ORG/NAME[@REVISION][/PATH]")
    return HubRef(f"{org}/{name}", unquote(revision) or None, (path,) if path else ())


def entry_ref(entry: dict[str, Any]) -> HubRef:
    """The repository of a catalog entry (`hf`, optional `revision` and `files`: a list, or one path as a
    string); SourceError naming the field when it is malformed."""
    repo, revision, files = entry["hf"], entry.get("revision"), entry.get("files", [])
    files = [files] if isinstance(files, str) else files
    if not isinstance(repo, str) or repo.count("/") != 1 or "" in repo.split("/"):
        raise SourceError(f"field 'hf': {repo!r} is not a repository ORG/NAME")
    if revision is not None and not isinstance(revision, str):
        raise SourceError(f"field 'revision': {revision!r} is not a branch, tag or commit")
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise SourceError(f"field 'files': {files!r} is not a list of paths in the repository")
    return HubRef(repo, revision, tuple(files))


def shards(index: Path, file: str, uri: str) -> list[str]:
    """Repository paths of the shards a safetensors index names (beside the index, in its folder)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise SourceError(f"{uri}: {file} is not a safetensors index ({hub.first_line(exc)})") from exc
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SourceError(f"{uri}: {file} is not a safetensors index (no weight_map of tensor -> shard)")
    paths = [
        posixpath.normpath(posixpath.join(posixpath.dirname(file), s))
        for s in dict.fromkeys(weight_map.values())
    ]
    if any(p.startswith(("../", "/")) or p == ".." for p in paths):
        raise SourceError(f"{uri}: {file} names a shard outside the repository")
    return paths


def _card(repo: str, commit: str, files: list[str]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The model card's front matter, config.json and warnings (a bad one is left out, which is not fatal)."""
    found: dict[str, dict[str, Any]] = {CARD: {}, CONFIG: {}}
    notes = []
    for name, parse in ((CARD, front_matter), (CONFIG, json.loads)):
        if name in files:
            try:
                data = parse(
                    hub.download_file(repo, commit, name).read_text(encoding="utf-8", errors="replace")
                )
                found[name] = data if isinstance(data, dict) else {}
            except (yaml.YAMLError, ValueError) as exc:
                notes.append(f"{hub_uri(repo, commit, name)}: not used for metadata ({hub.first_line(exc)})")
    return found[CARD], found[CONFIG], notes


def choose(files: list[str], shard_paths: set[str]) -> list[str]:
    """The weight files to ingest, one model each: every safetensors file or index (shards are part of their
    index), else every pytorch_model.bin, else every .onnx. A repository holding the same weights in several
    formats gives one, safetensors first; the others are not downloaded."""
    by_preference = (
        [
            f
            for f in files
            if f.endswith(INDEX_SUFFIX) or (f.endswith(".safetensors") and f not in shard_paths)
        ],
        [f for f in files if PurePosixPath(f).name == PYTORCH_WEIGHTS],
        [f for f in files if f.endswith(".onnx")],
    )
    return next((found for found in by_preference if found), [])


def _header_only() -> np.ndarray:
    raise AssertionError("a tensor known from a safetensors header only has no data to load")


def has_3x3_conv(shape: list[int], dtype: str) -> bool:
    """True when the safetensors reader would take a tensor of this header entry as a 2-D 3x3 conv weight, by
    extract's rule, in either layout it reads (the reader decides channel-first or -last per model)."""
    if dtype not in FLOATS or len(shape) not in CHANNEL_FIRST:
        return False
    return any(
        skip_reason(ConvTensor("", tuple(shape), FLOATS[dtype][0], layouts[len(shape)], _header_only)) is None
        for layouts in (CHANNEL_FIRST, CHANNEL_LAST)
    )


def _no_3x3_conv(repo: str, commit: str, parts: list[str]) -> bool:
    """True when the Hub's safetensors headers of `parts` (range requests, no weights) hold no 3x3 conv; False
    when one does, or when every part is already cached (nothing would be downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub.where()["cache_dir"]
    if all(isinstance(try_to_load_from_cache(repo, p, cache, revision=commit), str) for p in parts):
        return False
    api = hub.hub_api()
    for part in parts:
        header = api.parse_safetensors_file_metadata(repo, part, revision=commit, timeout=hub.TIMEOUT)
        if any(has_3x3_conv(t.shape, t.dtype) for t in header.tensors.values()):
            return False
    return True


def _index_shards(repo: str, commit: str, index: str) -> list[str]:
    """The shards of a safetensors index of the repository (the index itself is small and read first)."""
    return shards(hub.download_file(repo, commit, index), index, hub_uri(repo, commit, index))


def resolve(ref: HubRef) -> list[HubModel]:
    """The models of a repository, each pinned to the commit its revision resolves to, with the repository's
    metadata; a safetensors model with no 3x3 convolution comes back with `problem` set. Raises SourceError
    (TransientSourceError for network failures) naming the repository."""
    with hub.answers(ref.uri):
        commit, files = hub.listing(ref.repo, ref.revision)
        pinned = HubRef(ref.repo, commit, ref.files).uri
        missing = [f for f in ref.files if f not in files]
        if missing:
            raise SourceError(f"{pinned}: no file {missing[0]!r} in the repository at this commit")
        index_shards = {f: _index_shards(ref.repo, commit, f) for f in files if f.endswith(INDEX_SUFFIX)}
        chosen = list(ref.files) or choose(files, {s for found in index_shards.values() for s in found})
        if not chosen:
            raise SourceError(
                f"{pinned}: no weight file (safetensors, {PYTORCH_WEIGHTS}, .onnx) in the repository"
            )
        card, config, notes = _card(ref.repo, commit, files)
        meta = repo_metadata(ref.repo, commit, card, config)
        models = []
        for file in chosen:
            check = not hub.offline() and file.endswith((".safetensors", INDEX_SUFFIX))
            skip = check and _no_3x3_conv(ref.repo, commit, index_shards.get(file, [file]))
            models.append(
                HubModel(
                    {"hf": ref.repo, "revision": commit, "file": file},
                    {"name": ref.repo if len(chosen) == 1 else f"{ref.repo}/{file}", **meta},
                    f"{hub_uri(ref.repo, commit, file)}: {NO_3X3}" if skip else None,
                    tuple(notes),
                )
            )
    return models


def _linked(files: dict[str, Path], folder: Path) -> None:
    """Hard links (copies across file systems) of cached files under their repository paths in `folder`: the
    cache's snapshot entries are symlinks into its blobs, which the reader's containment check of shards
    refuses."""
    for path, cached in files.items():
        target = folder / path
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f"{target.name}.{os.getpid()}.part")
        try:
            os.link(cached.resolve(), part)
        except OSError:
            shutil.copyfile(cached, part)
        part.replace(target)


def download(spec: dict[str, Any], folder: Path) -> Path:
    """The local file of one model of a repository: its weight file in huggingface_hub's cache, downloaded at
    the pinned commit when missing. A sharded safetensors index gets its shards downloaded beside it in the
    snapshot, and comes back as `folder/<org>--<name>/<commit>/<index>` with its shards linked beside it."""
    repo, commit, file = spec["hf"], spec["revision"], spec["file"]
    with hub.answers(hub_uri(repo, commit, file)):
        path = hub.download_file(repo, commit, file)
        if not file.endswith(INDEX_SUFFIX):
            return path
        files = {
            file: path,
            **{s: hub.download_file(repo, commit, s) for s in _index_shards(repo, commit, file)},
        }
        model_folder = folder / repo.replace("/", "--") / commit
        _linked(files, model_folder)
    return model_folder / file
