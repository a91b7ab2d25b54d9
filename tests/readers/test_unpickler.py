"""Restricted unpickler: never runs code from a file, and is bit-exact against torch.load(weights_only=True)."""

from __future__ import annotations

import builtins
import functools
import io
import operator
import os
import pickle
import subprocess
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint
from filterlake.readers.torch_zip import load_zip
from filterlake.readers.unpickler import MAGIC_NUMBER, PROTOCOL_VERSION, Inert, LazyTensor, load_legacy


class Reduce:
    """Pickles as `func(*args)` (a __reduce__ payload); nothing runs when it is written."""

    def __init__(self, func: Any, *args: Any):
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """The payload."""
        return self.func, self.args

    def __call__(self, *args: Any) -> None:
        """Only so that pickle accepts a Reduce as the callable of another Reduce."""


def _objects(marker: Path) -> dict[str, Reduce]:
    """Objects whose unpickling creates `marker`."""
    touch, os_module = f"touch {marker}", Reduce(builtins.__import__, "os")
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": Reduce(os.system, touch),  # pickled as posix.system
        "subprocess.Popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        "subprocess.check_call": Reduce(subprocess.check_call, ["touch", str(marker)]),
        "builtins.eval": Reduce(builtins.eval, code),
        "builtins.exec": Reduce(builtins.exec, code),
        "getattr-chain": Reduce(Reduce(getattr, os_module, "system"), touch),
        "functools.partial": Reduce(Reduce(functools.partial, os.system, touch)),
        "operator.attrgetter": Reduce(Reduce(Reduce(operator.attrgetter, "system"), os_module), touch),
        "reduce-of-builtin": Reduce(Reduce(builtins.eval, "__import__('os').system"), touch),
    }


def _payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that create `marker` when loaded by a normal unpickler."""
    payloads = {
        name: pickle.dumps({"evil": obj, "n": 1}, protocol=2) for name, obj in _objects(marker).items()
    }
    touch = f"touch {marker}"
    payloads["os-global-protocol0"] = f"cos\nsystem\n(V{touch}\ntR.".encode()
    return payloads


def _legacy(main: bytes) -> bytes:
    """A legacy torch container around `main` (magic, protocol, sys_info, main pickle, storage keys)."""
    head = [MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True}]
    return b"".join(pickle.dumps(x, protocol=2) for x in head) + main + pickle.dumps([], protocol=2)


def _zip(main: bytes, torchscript: bool = False) -> bytes:
    """A torch zip container (or a TorchScript archive) whose data.pkl is `main`, with one 16-byte storage."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data.pkl", main)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", bytes(16))
        if torchscript:
            zf.writestr("archive/constants.pkl", pickle.dumps((), protocol=2))
            zf.writestr("archive/code/__torch__/evil.py", "class Evil(Module):\n  pass\n")
    return buffer.getvalue()


CONTAINERS: dict[str, Callable[[bytes], bytes]] = {
    "raw": lambda main: main,
    "legacy": _legacy,
    "zip": _zip,
    "torchscript": lambda main: _zip(main, True),
}


def _wait_for(path: Path, seconds: float = 5.0) -> bool:
    """Poll for a file an asynchronous payload (Popen) may create."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("name", list(_payloads(Path("m"))))
def test_payloads_are_live(tmp_path: Path, name: str) -> None:
    """Sanity check of the fixtures: a normal unpickler does run each payload."""
    marker = tmp_path / "pwned"
    pickle.loads(_payloads(marker)[name])
    assert _wait_for(marker)


@pytest.mark.parametrize("container", list(CONTAINERS))
@pytest.mark.parametrize("name", list(_payloads(Path("m"))))
def test_payloads_never_run(tmp_path: Path, name: str, container: str) -> None:
    """Each payload, raw or inside a torch container, is read as inert placeholders or refused; nothing runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(CONTAINERS[container](_payloads(marker)[name]))
    try:
        checkpoint = open_checkpoint(path)
    except CheckpointError as exc:
        assert "evil.pt: " in str(exc) and "\n" not in exc.reason
    else:
        assert checkpoint.load_method == "restricted-unpickler" and checkpoint.tensors == []
    time.sleep(0.05)
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", list(_objects(Path("m"))))
def test_payloads_next_to_weights(tmp_path: Path, name: str, zip_format: bool) -> None:
    """torch.save of a state dict carrying a payload: the weight is read exactly, the payload stays inert."""
    marker, weight = tmp_path / "pwned", torch.randn(4, 2, 3, 3)
    torch.save(
        {"conv.weight": weight, "evil": _objects(marker)[name]},
        tmp_path / "w.pt",
        _use_new_zipfile_serialization=zip_format,
    )
    checkpoint = open_checkpoint(tmp_path / "w.pt")
    assert checkpoint.load_method == "restricted-unpickler" and [t.name for t in checkpoint.tensors] == [
        "conv"
    ]
    np.testing.assert_array_equal(checkpoint.tensors[0].load(), weight.numpy())
    time.sleep(0.05)
    assert not marker.exists()


def test_placeholders_record_but_never_call(tmp_path: Path) -> None:
    """Globals become inert objects recording their name and arguments."""
    marker = tmp_path / "pwned"
    obj = load_zip(_write(tmp_path / "e.pt", _zip(_payloads(marker)["getattr-chain"])))[0]
    evil = obj["evil"]
    assert isinstance(evil, Inert) and evil.args == (f"touch {marker}",)
    assert evil.qualname == "__builtin__.getattr()"  # protocol 2 names builtins the Python 2 way
    assert type(evil).__bases__ == (Inert,)
    assert not marker.exists()


STORAGE_ID = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"


@pytest.mark.parametrize(
    "main",
    [
        b"\x80\x02" + STORAGE_ID + b"}X\x04\x00\x00\x00pathX\x0b\x00\x00\x00/etc/shadowsb.",
        b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00xsb.",
    ],
    ids=["storage-path", "storage-type"],
)
def test_build_cannot_redirect_storages(tmp_path: Path, main: bytes) -> None:
    """BUILD on a reader-made storage (which could point reads at another file) is refused."""
    with pytest.raises(pickle.UnpicklingError, match="tries to set the state"):
        load_zip(_write(tmp_path / "e.pt", _zip(main)))


def _write(path: Path, data: bytes) -> Path:
    """Write bytes and return the path."""
    path.write_bytes(data)
    return path


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> tensor of a nested dict structure (torch or restricted tensors)."""
    if isinstance(obj, (torch.Tensor, LazyTensor)):
        return {prefix: obj}
    if isinstance(obj, Mapping):
        return {k: v for key, value in obj.items() for k, v in _flatten(value, f"{prefix}.{key}").items()}
    return {}


def test_bit_exact_against_torch(weights_only_row: dict[str, str], corpus: Path) -> None:
    """Every tensor of every corpus torch file that torch.load(weights_only=True) reads: same shape, dtype, bits."""
    path = corpus / weights_only_row["path"]
    expected = _flatten(torch.load(path, map_location="cpu", weights_only=True))
    got = _flatten(load_zip(path)[0] if zipfile.is_zipfile(path) else load_legacy(path))
    assert list(got) == list(expected) and len(got) > 10
    for key, want in expected.items():
        assert got[key].shape == tuple(want.shape) and got[key].dtype == str(want.dtype).removeprefix(
            "torch."
        )
        if want.is_floating_point():
            np.testing.assert_array_equal(got[key].numpy(), want.float().numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_views_bit_exact(tmp_path: Path, dtype: torch.dtype, zip_format: bool) -> None:
    """Transposed, offset and shared-storage views rebuild exactly, in every float dtype."""
    base = torch.randn(6, 5, 3, 3).to(dtype)
    tensors = {"base": base, "t": base.transpose(0, 1), "slice": base[2:, 1:4], "step": base[::2, :, 1:, ::2]}
    path = tmp_path / "views.pt"
    torch.save(tensors, path, _use_new_zipfile_serialization=zip_format)
    got = load_zip(path)[0] if zip_format else load_legacy(path)
    for key, want in tensors.items():
        np.testing.assert_array_equal(got[key].numpy(), want.float().numpy())


def test_tensor_outside_its_storage_is_refused(tmp_path: Path) -> None:
    """A tensor record reaching past its storage is refused rather than read out of bounds."""
    torch.save({"w": torch.zeros(4, 3, 3, 3)}, tmp_path / "w.pt")
    archive = zipfile.ZipFile(tmp_path / "w.pt")
    members = {i.filename: archive.read(i) for i in archive.infolist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    members[pkl] = members[pkl].replace(b"K\x04K\x03K\x03K\x03", b"K\x09K\x03K\x03K\x03")
    with zipfile.ZipFile(tmp_path / "bad.pt", "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    with pytest.raises(CheckpointError, match="reaches element"):
        open_checkpoint(tmp_path / "bad.pt")
