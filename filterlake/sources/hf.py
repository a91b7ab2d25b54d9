"""Models on the Hugging Face Hub: `hf://ORG/NAME[@REVISION][/PATH]` and catalog entries with `hf`.

Resolving a repository (discovery) pins its revision to a commit, lists its files (the Hub's list, or the
cached snapshot under HF_HUB_OFFLINE=1), chooses its weight files and reads its model card and config.json for
metadata. Before any weight is downloaded, safetensors headers are read with HTTP range requests, so a model
with no 3x3 convolution is passed over, said so, with nothing downloaded. Downloading (fetch) puts the chosen
files into huggingface_hub's own cache at that commit. Hub and network errors become one-line SourceErrors
naming the source; network failures and HTTP 5xx are TransientSourceErrors, worth a retry.

HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE are read at each call (huggingface_hub reads them once, at
import); HF_TOKEN is read by huggingface_hub at each request. huggingface_hub is imported only when a Hub
source is used, so the command line starts without it.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import yaml

from filterlake.errors import SourceError, TransientSourceError, describe_os_error
from filterlake.extract import skip_reason
from filterlake.readers.base import CHANNEL_FIRST, CHANNEL_LAST, ConvTensor
from filterlake.readers.safetensors import FLOATS

SCHEME = "hf://"
INDEX_SUFFIX = ".safetensors.index.json"
PYTORCH_WEIGHTS = "pytorch_model.bin"
CARD, CONFIG = "README.md", "config.json"
TIMEOUT = 30.0  # seconds for one Hub API call (huggingface_hub's client has no timeout of its own)
NO_3X3 = "no 3x3 convolution in the safetensors header; nothing downloaded"
# Pipeline tags that name the task a CNN was trained for; other tags (feature extraction, text tasks) only
# go to the extra metadata. The task is the tag in words ("image-classification" -> "image classification").
TASK_PIPELINE_TAGS = frozenset(
    {
        "image-classification",
        "object-detection",
        "image-segmentation",
        "depth-estimation",
        "image-to-image",
        "keypoint-detection",
        "mask-generation",
        "video-classification",
        "zero-shot-image-classification",
        "zero-shot-object-detection",
        "unconditional-image-generation",
        "text-to-image",
    }
)


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


def _offline() -> bool:
    """HF_HUB_OFFLINE=1 now, or offline mode as huggingface_hub read it at import."""
    from huggingface_hub import constants

    return (
        constants.is_offline_mode()
        or os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    )


def _where() -> dict[str, Any]:
    """The keyword arguments of every download: the cache, the endpoint, whether the network may be used."""
    return {
        "cache_dir": os.environ.get("HF_HUB_CACHE") or None,
        "endpoint": os.environ.get("HF_ENDPOINT") or None,
        "local_files_only": _offline(),
    }


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def _download(repo: str, commit: str, file: str) -> Path:
    """A file of the repository at `commit` from huggingface_hub's cache (downloaded into it when missing)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, file, revision=commit, **_where()))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:200]


def _unreachable(uri: str, exc: BaseException) -> TransientSourceError:
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return TransientSourceError(f"{uri}: cannot reach the Hub at {endpoint} ({_first_line(exc)})")


def _http_error(uri: str, exc: Any) -> SourceError:
    """An HTTP answer of the Hub that is not one of the named errors: 5xx, 408 and 429 are transient."""
    status = exc.response.status_code
    if status >= 500 or status in (408, 429):
        return TransientSourceError(f"{uri}: the Hub answered HTTP {status}, try again later")
    hint = ": set HF_TOKEN to a token with access" if status in (401, 403) else ""
    return SourceError(f"{uri}: the Hub refused the request (HTTP {status}){hint}")


@contextmanager
def _answers(uri: str) -> Iterator[None]:
    """Hub and network errors as one-line SourceErrors naming `uri` (network failures and 5xx transient)."""
    import httpx2
    from huggingface_hub import errors, get_token

    try:
        yield
    except errors.GatedRepoError as exc:
        token = "the token has no access to it" if get_token() else "set HF_TOKEN to a token with access"
        raise SourceError(f"{uri}: gated repository, {token} (HTTP {exc.response.status_code})") from exc
    except errors.RepositoryNotFoundError as exc:
        raise SourceError(
            f"{uri}: no such repository on the Hub, or a private one (set HF_TOKEN) "
            f"(HTTP {exc.response.status_code})"
        ) from exc
    except errors.RevisionNotFoundError as exc:
        raise SourceError(f"{uri}: no such revision in the repository") from exc
    except errors.RemoteEntryNotFoundError as exc:
        raise SourceError(f"{uri}: no such file in the repository at this revision") from exc
    except (
        errors.LocalEntryNotFoundError,
        errors.OfflineModeIsEnabled,
        errors.RevisionResolutionError,
    ) as exc:
        if _offline():
            cache = os.environ.get("HF_HUB_CACHE") or "the default Hugging Face cache"
            raise SourceError(
                f"{uri}: not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1 forbids downloading it"
            ) from exc
        if isinstance(exc.__cause__, errors.HfHubHTTPError):
            raise _http_error(uri, exc.__cause__) from exc
        if isinstance(exc.__cause__, errors.FileMetadataError):
            raise SourceError(f"{uri}: the endpoint does not answer as a Hugging Face Hub") from exc
        raise _unreachable(uri, exc.__cause__ or exc) from exc
    except errors.HfHubHTTPError as exc:
        raise _http_error(uri, exc) from exc
    except httpx2.TransportError as exc:
        raise _unreachable(uri, exc) from exc
    except (errors.SafetensorsParsingError, errors.HFValidationError) as exc:
        raise SourceError(f"{uri}: {_first_line(exc)}") from exc
    except OSError as exc:  # the cache cannot be written: a full disk, a read-only folder
        raise SourceError(f"{uri}: {describe_os_error(exc)}") from exc


def _listing(ref: HubRef) -> tuple[str, list[str]]:
    """The commit the revision resolves to and the repository's files at that commit: from the Hub (the
    revision's commit is then recorded in the cache, for later offline runs), or under HF_HUB_OFFLINE=1 from the
    cached snapshot alone (the files that are there)."""
    from huggingface_hub import snapshot_download

    api, cache = _api(), _where()["cache_dir"]
    if _offline():
        folder = Path(
            snapshot_download(ref.repo, revision=ref.revision, cache_dir=cache, local_files_only=True)
        )
        return folder.name, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    info = api.model_info(ref.repo, revision=ref.revision, timeout=TIMEOUT)
    api.resolve_revision(ref.repo, revision=ref.revision, cache_dir=cache)  # writes refs/REVISION
    return info.sha, sorted(sibling.rfilename for sibling in info.siblings or [])


def shards(index: Path, file: str, uri: str) -> list[str]:
    """Repository paths of the shards a safetensors index names (beside the index, in its folder)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise SourceError(f"{uri}: {file} is not a safetensors index ({_first_line(exc)})") from exc
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SourceError(f"{uri}: {file} is not a safetensors index (no weight_map of tensor -> shard)")
    paths = [
        posixpath.normpath(posixpath.join(posixpath.dirname(file), s))
        for s in dict.fromkeys(weight_map.values())
    ]
    if any(p.startswith(("../", "/")) or p == ".." for p in paths):
        raise SourceError(f"{uri}: {file} names a shard outside the repository")
    return paths


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card (between its first two `---` lines); {} when it has none.
    yaml.YAMLError when it is not valid YAML."""
    lines = text.lstrip("\ufeff").splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if not lines or lines[0].strip() != "---" or end is None:
        return {}
    data = yaml.safe_load("\n".join(lines[1:end]))
    return data if isinstance(data, dict) else {}


def _words(value: Any) -> list[str]:
    """A card value that may be one string or a list of them, as a list of strings."""
    values = value if isinstance(value, list) else [value] if value else []
    return [str(v) for v in values if v not in (None, "")]


def repo_metadata(repo: str, commit: str, card: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Model metadata ({fields..., "extra": {...}}) from the card's front matter and timm's/transformers'
    config.json: license, datasets as training dataset, a vision pipeline tag as task, the architecture."""
    named = card.get("license_name") if card.get("license") == "other" else None
    license_ = ", ".join(_words(named or card.get("license")))
    pipeline_tag = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
    pretrained = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else {}
    architecture = (
        config.get("architecture")
        or pretrained.get("architecture")
        or next(iter(_words(config.get("architectures"))), None)
    )
    fields = {
        "architecture": str(architecture) if architecture else None,
        "task": pipeline_tag.replace("-", " ") if pipeline_tag in TASK_PIPELINE_TAGS else None,
        "training_dataset": ", ".join(_words(card.get("datasets"))) or None,
        "license": license_ or None,
    }
    extra = {
        "hf_repo": repo,
        "hf_commit": commit,
        "hf_tags": _words(card.get("tags")),
        "hf_pipeline_tag": pipeline_tag,
        "hf_datasets": _words(card.get("datasets")),
        "hf_library_name": card.get("library_name"),
    }
    return {**{k: v for k, v in fields.items() if v}, "extra": {k: v for k, v in extra.items() if v}}


def _card(repo: str, commit: str, files: list[str]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The model card's front matter, config.json and warnings (a bad one is left out, which is not fatal)."""
    found: dict[str, dict[str, Any]] = {CARD: {}, CONFIG: {}}
    notes = []
    for name, parse in ((CARD, front_matter), (CONFIG, json.loads)):
        if name in files:
            try:
                data = parse(_download(repo, commit, name).read_text(encoding="utf-8", errors="replace"))
                found[name] = data if isinstance(data, dict) else {}
            except (yaml.YAMLError, ValueError) as exc:
                notes.append(f"{hub_uri(repo, commit, name)}: not used for metadata ({_first_line(exc)})")
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

    cache = _where()["cache_dir"]
    if all(isinstance(try_to_load_from_cache(repo, p, cache, revision=commit), str) for p in parts):
        return False
    api = _api()
    for part in parts:
        header = api.parse_safetensors_file_metadata(repo, part, revision=commit, timeout=TIMEOUT)
        if any(has_3x3_conv(t.shape, t.dtype) for t in header.tensors.values()):
            return False
    return True


def _index_shards(repo: str, commit: str, index: str) -> list[str]:
    """The shards of a safetensors index of the repository (the index itself is small and read first)."""
    return shards(_download(repo, commit, index), index, hub_uri(repo, commit, index))


def resolve(ref: HubRef) -> list[HubModel]:
    """The models of a repository, each pinned to the commit its revision resolves to, with the repository's
    metadata; a safetensors model with no 3x3 convolution comes back with `problem` set. Raises SourceError
    (TransientSourceError for network failures) naming the repository."""
    with _answers(ref.uri):
        commit, files = _listing(ref)
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
            check = not _offline() and file.endswith((".safetensors", INDEX_SUFFIX))
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
    with _answers(hub_uri(repo, commit, file)):
        path = _download(repo, commit, file)
        if not file.endswith(INDEX_SUFFIX):
            return path
        files = {file: path, **{s: _download(repo, commit, s) for s in _index_shards(repo, commit, file)}}
        model_folder = folder / repo.replace("/", "--") / commit
        _linked(files, model_folder)
    return model_folder / file
