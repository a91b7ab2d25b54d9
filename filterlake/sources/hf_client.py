"""The calls filterlake makes to huggingface_hub, and its errors as one-line SourceErrors naming the source.

HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE are read at each call (huggingface_hub reads them once, at
import); HF_TOKEN is read by huggingface_hub at each request. huggingface_hub is imported only when a Hub
source is used, so the command line starts without it. Network failures and HTTP 5xx (also 408, 429) are
TransientSourceErrors, worth a retry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filterlake.errors import SourceError, TransientSourceError, describe_os_error

TIMEOUT = 30.0  # seconds for one Hub API call (huggingface_hub's client has no timeout of its own)


def offline() -> bool:
    """HF_HUB_OFFLINE=1 now, or offline mode as huggingface_hub read it at import."""
    from huggingface_hub import constants

    return (
        constants.is_offline_mode()
        or os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    )


def where() -> dict[str, Any]:
    """The keyword arguments of every download: the cache, the endpoint, whether the network may be used."""
    return {
        "cache_dir": os.environ.get("HF_HUB_CACHE") or None,
        "endpoint": os.environ.get("HF_ENDPOINT") or None,
        "local_files_only": offline(),
    }


def hub_api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def download_file(repo: str, commit: str, file: str) -> Path:
    """A file of the repository at `commit` from huggingface_hub's cache (downloaded into it when missing)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, file, revision=commit, **where()))


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:200]


def unreachable(uri: str, exc: BaseException) -> TransientSourceError:
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return TransientSourceError(f"{uri}: cannot reach the Hub at {endpoint} ({first_line(exc)})")


def http_error(uri: str, exc: Any) -> SourceError:
    """An HTTP answer of the Hub that is not one of the named errors: 5xx, 408 and 429 are transient."""
    status = exc.response.status_code
    if status >= 500 or status in (408, 429):
        return TransientSourceError(f"{uri}: the Hub answered HTTP {status}, try again later")
    hint = ": set HF_TOKEN to a token with access" if status in (401, 403) else ""
    return SourceError(f"{uri}: the Hub refused the request (HTTP {status}){hint}")


@contextmanager
def answers(uri: str) -> Iterator[None]:
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
        if offline():
            cache = os.environ.get("HF_HUB_CACHE") or "the default Hugging Face cache"
            raise SourceError(
                f"{uri}: not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1 forbids downloading it"
            ) from exc
        if isinstance(exc.__cause__, errors.HfHubHTTPError):
            raise http_error(uri, exc.__cause__) from exc
        if isinstance(exc.__cause__, errors.FileMetadataError):
            raise SourceError(f"{uri}: the endpoint does not answer as a Hugging Face Hub") from exc
        raise unreachable(uri, exc.__cause__ or exc) from exc
    except errors.HfHubHTTPError as exc:
        raise http_error(uri, exc) from exc
    except httpx2.TransportError as exc:
        raise unreachable(uri, exc) from exc
    except (errors.SafetensorsParsingError, errors.HFValidationError) as exc:
        raise SourceError(f"{uri}: {first_line(exc)}") from exc
    except OSError as exc:  # the cache cannot be written: a full disk, a read-only folder
        raise SourceError(f"{uri}: {describe_os_error(exc)}") from exc


def listing(repo: str, revision: str | None) -> tuple[str, list[str]]:
    """The commit the revision resolves to and the repository's files at that commit: from the Hub (the
    revision's commit is then recorded in the cache, for later offline runs), or under HF_HUB_OFFLINE=1 from the
    cached snapshot alone (the files that are there)."""
    from huggingface_hub import snapshot_download

    api, cache = hub_api(), where()["cache_dir"]
    if offline():
        folder = Path(snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True))
        return folder.name, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    info = api.model_info(repo, revision=revision, timeout=TIMEOUT)
    api.resolve_revision(repo, revision=revision, cache_dir=cache)  # writes refs/REVISION
    return info.sha, sorted(sibling.rfilename for sibling in info.siblings or [])
