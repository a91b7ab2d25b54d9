"""Hugging Face Hub repositories for tests, without the Hub: real small checkpoints built in code, a cache laid
out as huggingface_hub lays it out, and a local Hub over HTTP with the endpoints huggingface_hub 2.4 calls.

The local Hub (`LocalHub`, a stdlib ThreadingHTTPServer on 127.0.0.1) answers
- GET /api/models/ORG/NAME[/revision/REV]: model_info (sha, siblings; a gated repository is listed to anyone);
- HEAD and GET /ORG/NAME/resolve/REV/PATH: X-Repo-Commit, ETag and Content-Length (what hf_hub_download needs),
  and `Range: bytes=A-B` with 206 (what parse_safetensors_file_metadata sends);
and huggingface_hub's error headers (X-Error-Code RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo). It
logs every request and the bytes it served, so a test can say what was downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

README = """---
license: apache-2.0
datasets:
- imagenet-1k
tags:
- image-classification
- timm
pipeline_tag: image-classification
library_name: timm
---
# tiny-cnn

A small CNN for tests.
"""
CONFIG = {"architecture": "resnet18", "num_classes": 5, "pretrained_cfg": {"tag": "a1_in1k"}}


def conv_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a small real CNN: two 3x3 convs (12 and 10 filters) around a 1x1 conv."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 1),
        torch.nn.Conv2d(2, 5, 3, bias=False),
    )
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def filters_of(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The (n, 9) filters of each 3x3 conv weight, by layer name, as the lake must hold them."""
    return {
        k.removesuffix(".weight"): v.numpy().reshape(-1, 9)
        for k, v in tensors.items()
        if v.shape[2:] == (3, 3)
    }


def torch_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getvalue()


def flat_tensors() -> dict[str, torch.Tensor]:
    """Weights without a 3x3 conv, larger than the 100 kB a header read fetches: a 1x1 conv and a linear layer."""
    torch.manual_seed(1)
    return {"proj.weight": torch.randn(256, 256, 1, 1), "fc.weight": torch.randn(10, 256)}


def card_files() -> dict[str, bytes]:
    return {"README.md": README.encode(), "config.json": json.dumps(CONFIG).encode()}


def single_repo(tensors: dict[str, torch.Tensor]) -> dict[str, bytes]:
    """A timm-like repository: model.safetensors and the same weights as pytorch_model.bin, card and config."""
    return {**card_files(), "model.safetensors": save(tensors), "pytorch_model.bin": torch_bytes(tensors)}


def sharded_repo(tensors: dict[str, torch.Tensor]) -> dict[str, bytes]:
    """The weights in two safetensors shards with their model.safetensors.index.json."""
    names = list(tensors)
    parts = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    index = {"metadata": {}, "weight_map": {name: shard for shard, found in parts.items() for name in found}}
    shards = {shard: save({n: tensors[n] for n in found}) for shard, found in parts.items()}
    return {**card_files(), **shards, "model.safetensors.index.json": json.dumps(index).encode()}


def commit_of(files: dict[str, bytes]) -> str:
    """A 40-hex commit hash for a set of files (stable, as the Hub's would be)."""
    digest = hashlib.sha1()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path])
    return digest.hexdigest()


def etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lay_out_cache(cache: Path, repo: str, files: dict[str, bytes], ref: str = "main") -> str:
    """Write a repository into `cache` as huggingface_hub does: blobs by ETag, snapshot symlinks, refs/REF."""
    commit = commit_of(files)
    folder = cache / f"models--{repo.replace('/', '--')}"
    for path, data in files.items():
        blob = folder / "blobs" / etag(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (len(Path(path).parts) + 1)) / "blobs" / etag(data))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / ref).write_text(commit)
    return commit


@dataclass
class HubRepo:
    """A repository of the local Hub: its files at one commit, on branch main; gated ones need `token`."""

    files: dict[str, bytes]
    token: str | None = None

    @property
    def commit(self) -> str:
        return commit_of(self.files)


@dataclass
class Served:
    """One request the local Hub answered."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes
    authorization: str | None


@dataclass
class LocalHub:
    """The local Hub's repositories and its request log; `url` once started."""

    repos: dict[str, HubRepo] = field(default_factory=dict)
    log: list[Served] = field(default_factory=list)
    url: str = ""
    failing: int | None = None  # an HTTP status every request gets (a Hub in trouble), when set

    def served(self, repo: str, file: str, method: str = "GET") -> list[Served]:
        """The requests for one file of a repository."""
        pattern = re.compile(rf"^/{re.escape(repo)}/resolve/[^/]+/{re.escape(file)}$")
        return [s for s in self.log if s.method == method and pattern.match(s.path)]


RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
MODEL_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")


def _handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
            served = Served(
                self.command,
                self.path.split("?")[0],
                self.headers.get("Range"),
                status,
                len(data) if body else 0,
                self.headers.get("Authorization"),
            )
            hub.log.append(served)  # before answering: the client may be done before this thread goes on
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _error(self, status: int, code: str, body: bool, commit: str | None = None) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json"}
            self._send(status, {**headers, **({"X-Repo-Commit": commit} if commit else {})}, b"{}", body)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?")[0]
            if hub.failing:
                self._error(hub.failing, "Unavailable", body)
            elif found := MODEL_INFO.match(path):
                self._model_info(found["repo"], found["rev"] or "main", body)
            elif found := RESOLVE.match(path):
                self._resolve(found["repo"], found["rev"], found["file"], body)
            else:
                self._error(404, "NotFound", body)

        def _repo(self, name: str, revision: str, body: bool) -> HubRepo | None:
            repo = hub.repos.get(name)
            if repo is None:
                self._error(404, "RepoNotFound", body)
            elif revision not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", body)
            else:
                return repo
            return None

        def _model_info(self, name: str, revision: str, body: bool) -> None:
            if (repo := self._repo(name, revision, body)) is None:
                return
            info = {
                "id": name,
                "sha": repo.commit,
                "private": False,
                "gated": "auto" if repo.token else False,
                "siblings": [{"rfilename": f} for f in sorted(repo.files)],
            }
            self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)

        def _resolve(self, name: str, revision: str, file: str, body: bool) -> None:
            if (repo := self._repo(name, revision, body)) is None:
                return
            if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
                self._error(401, "GatedRepo", body)
                return
            if file not in repo.files:
                self._error(404, "EntryNotFound", body, repo.commit)
                return
            data, status = repo.files[file], 200
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag(data)}"', "Accept-Ranges": "bytes"}
            if found := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or ""):
                start = int(found[1])
                end = min(int(found[2]) if found[2] else len(data) - 1, len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start : end + 1], 206
            self._send(status, headers, data, body)

    return Handler


def start_hub(hub: LocalHub) -> ThreadingHTTPServer:
    """Serve `hub` on a free port of 127.0.0.1 in a daemon thread; sets `hub.url`. Stop with `.shutdown()`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


@contextmanager
def serving(hub: LocalHub) -> Iterator[LocalHub]:
    """The local Hub, started for the block and stopped after it."""
    server = start_hub(hub)
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port of 127.0.0.1 where nothing listens (a Hub that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
