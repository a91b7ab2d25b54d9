"""PyTorch reader: state dicts, checkpoint dicts, TorchScript and pickled modules, all with exact values."""

from __future__ import annotations

import argparse
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint, sniff_format

TORCH_LOAD, RESTRICTED = "torch.load(weights_only=True)", "restricted-unpickler"


class Net(nn.Module):
    """Small network with every conv flavour the readers must tell apart."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, groups=2, dilation=2, padding=2, bias=False)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 3)
        self.line = nn.Conv1d(4, 4, 5)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Use every layer once."""
        x = self.up(self.depthwise(self.grouped(self.conv(x))))
        return self.fc(self.line(x.flatten(2)).mean(2))


@pytest.fixture(scope="module")
def net() -> Net:
    """A randomly initialised Net (fixed seed)."""
    torch.manual_seed(0)
    return Net().eval()


def _conv_weights(net: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Expected layer name -> weight of the 3-D/4-D/5-D parameters."""
    return {
        prefix + k.removesuffix(".weight"): v.detach()
        for k, v in net.state_dict().items()
        if 3 <= v.ndim <= 5
    }


def _assert_weights(path: Path, expected: dict[str, torch.Tensor], fmt: str, method: str) -> Any:
    """Open `path` and compare names, shapes, dtypes and values with `expected` (in order)."""
    checkpoint = open_checkpoint(path)
    assert (checkpoint.format, checkpoint.load_method) == (fmt, method)
    assert [t.name for t in checkpoint.tensors] == list(expected)
    for tensor, want in zip(checkpoint.tensors, expected.values()):
        assert tensor.shape == tuple(want.shape) and tensor.dtype == str(want.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(tensor.load(), want.float().numpy())
    return checkpoint


Saver = Callable[[nn.Module, Path], None]
CASES: dict[str, tuple[Saver, str, str, str]] = {  # name: (save, file name, format, method)
    "zip": (lambda m, p: torch.save(m.state_dict(), p), "w.pt", "torch-state-dict", TORCH_LOAD),
    "legacy": (
        lambda m, p: torch.save(m.state_dict(), p, _use_new_zipfile_serialization=False),
        "w.pth",
        "torch-state-dict",
        TORCH_LOAD,
    ),
    "nested": (
        lambda m, p: torch.save(
            {"epoch": 3, "optimizer": {"state": {}}, "model_state_dict": m.state_dict()}, p
        ),
        "w.ckpt",
        "torch-checkpoint-dict",
        TORCH_LOAD,
    ),
    "dataparallel": (
        lambda m, p: torch.save({f"module.{k}": v for k, v in m.state_dict().items()}, p),
        "w.th",
        "torch-state-dict",
        TORCH_LOAD,
    ),
    "no-extension": (lambda m, p: torch.save(m.state_dict(), p), "weights", "torch-state-dict", TORCH_LOAD),
    "namespace": (
        lambda m, p: torch.save(
            {"hyper_parameters": argparse.Namespace(lr=0.1), "state_dict": m.state_dict()}, p
        ),
        "lightning.ckpt",
        "torch-checkpoint-dict",
        RESTRICTED,
    ),
    "namespace-legacy": (
        lambda m, p: torch.save(
            {"args": argparse.Namespace(lr=0.1), "net": m.state_dict()},
            p,
            _use_new_zipfile_serialization=False,
        ),
        "lightning.pth",
        "torch-checkpoint-dict",
        RESTRICTED,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_state_dicts(tmp_path: Path, net: Net, case: str) -> None:
    """Flat and nested state dicts in both containers give the exact weights; unknown orientation."""
    save, name, fmt, method = CASES[case]
    save(net, tmp_path / name)
    checkpoint = _assert_weights(tmp_path / name, _conv_weights(net), fmt, method)
    assert {t.kind for t in checkpoint.tensors} == {"unknown"}
    assert [t.layout for t in checkpoint.tensors] == ["OIHW"] * 4 + ["OIW"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_low_and_double_precision(tmp_path: Path, net: Net, dtype: torch.dtype, zip_format: bool) -> None:
    """bf16/fp16/fp64 weights keep their stored dtype and load exactly (as float32)."""
    state = {k: v.to(dtype) for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "w.pt", _use_new_zipfile_serialization=zip_format)
    expected = {k.removesuffix(".weight"): v for k, v in state.items() if v.ndim >= 3}
    _assert_weights(tmp_path / "w.pt", expected, "torch-state-dict", TORCH_LOAD)


def _module_tensors(checkpoint: Any) -> dict[str, tuple[str, int | None, tuple[int, ...] | None]]:
    """name -> (kind, groups, dilation)."""
    return {t.name: (t.kind, t.groups, t.dilation) for t in checkpoint.tensors}


MODULE_INFO = {
    "conv": ("conv", 1, (1, 1)),
    "grouped": ("conv", 2, (2, 2)),
    "depthwise": ("conv", 8, (1, 1)),
    "up": ("transposed", 1, (1, 1)),
    "line": ("conv", 1, (1,)),
}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript(tmp_path: Path, net: Net) -> None:
    """A scripted module is read without torch.jit: orientation, groups and dilation from the archive."""
    torch.jit.script(net).save(str(tmp_path / "scripted.pt"))
    assert sniff_format(tmp_path / "scripted.pt") == "torchscript"
    checkpoint = _assert_weights(tmp_path / "scripted.pt", _conv_weights(net), "torchscript", RESTRICTED)
    assert _module_tensors(checkpoint) == MODULE_INFO


@pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated", "ignore:`torch.jit.freeze` is deprecated"
)
def test_frozen_torchscript(tmp_path: Path, net: Net) -> None:
    """torch.jit.freeze moves the weights into constants.pkl: they are still found (orientation unknown)."""
    torch.jit.freeze(torch.jit.script(net)).save(str(tmp_path / "frozen.pt"))
    checkpoint = open_checkpoint(tmp_path / "frozen.pt")
    assert checkpoint.format == "torchscript" and {t.kind for t in checkpoint.tensors} == {"unknown"}
    loaded = sorted((t.load() for t in checkpoint.tensors), key=lambda a: (a.shape, a.tobytes()))
    expected = sorted(
        (w.float().numpy() for w in _conv_weights(net).values()), key=lambda a: (a.shape, a.tobytes())
    )
    assert len(loaded) == len(expected)
    for a, b in zip(loaded, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("wrap", "zip_format", "fmt"),
    [
        (False, True, "torch-full-pickle"),
        (False, False, "torch-full-pickle"),
        (True, True, "torch-full-pickle"),
        (True, False, "torch-legacy-pickle"),
    ],
    ids=["module-zip", "module-legacy", "dict-zip", "dict-legacy"],
)
def test_pickled_module(tmp_path: Path, net: Net, wrap: bool, zip_format: bool, fmt: str) -> None:
    """torch.save(model) (alone or in a training dict) is read through placeholders, classes never imported."""
    torch.save(
        {"epoch": 50, "model": net} if wrap else net,
        tmp_path / "m.pth",
        _use_new_zipfile_serialization=zip_format,
    )
    checkpoint = _assert_weights(tmp_path / "m.pth", _conv_weights(net), fmt, RESTRICTED)
    assert _module_tensors(checkpoint) == MODULE_INFO
    assert any("Unsupported global" in note for note in checkpoint.notes)


def test_dataparallel_module(tmp_path: Path, net: Net) -> None:
    """A pickled nn.DataParallel wrapper: names lose the `module.` prefix."""
    torch.save(nn.DataParallel(net), tmp_path / "dp.pth")
    _assert_weights(tmp_path / "dp.pth", _conv_weights(net), "torch-full-pickle", RESTRICTED)


def test_corpus_negative_controls(corpus: Path) -> None:
    """relaynet: 3x7 and 1x1 kernels only; texturenet: 5-D only; both read exactly as documented."""
    relaynet = open_checkpoint(corpus / "relaynet/relaynet_good.model")
    assert [t.kernel for t in relaynet.tensors] == [(3, 7)] * 7 + [(1, 1)]
    assert {t.kind for t in relaynet.tensors} == {"conv"}
    texture = open_checkpoint(corpus / "texturenet_f3_seismic/saved_model.pt")
    assert [t.kernel for t in texture.tensors] == [(5, 5, 5)] + [(3, 3, 3)] * 4 + [(1, 1, 1)]
    assert {t.layout for t in texture.tensors} == {"OIDHW"}


def test_vdsr_legacy_pickle(corpus: Path) -> None:
    """vdsr: a legacy training dict holding a pickled module: 20 plain 3x3 convs, 73,856 kernels."""
    checkpoint = open_checkpoint(corpus / "vdsr/model_epoch_50.pth")
    assert checkpoint.format == "torch-legacy-pickle" and checkpoint.load_method == RESTRICTED
    assert {(t.kind, t.groups, t.dilation) for t in checkpoint.tensors} == {("conv", 1, (1, 1))}
    assert [t.name for t in checkpoint.tensors][-2:] == ["input", "output"]
    assert sum(t.shape[0] * t.shape[1] for t in checkpoint.tensors) == 73_856


def _truncate(path: Path, keep: float) -> None:
    """Cut a file to a fraction of its size."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("zip_format", "keep", "reason"),
    [
        (True, 0.5, "truncated or corrupt zip"),
        (False, 0.5, "truncated"),
        (False, 0.02, "not a readable"),
        (True, 0.02, "truncated or corrupt zip"),
    ],
)
def test_truncated(tmp_path: Path, net: Net, zip_format: bool, keep: float, reason: str) -> None:
    """Truncated files are refused with a one-line reason."""
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    _truncate(path, keep)
    with pytest.raises(CheckpointError, match=reason):
        open_checkpoint(path)


# Storage entries that do not fit their storages. torch.load(mmap=True) slices each storage out of a map of the
# whole file by the size the pickle declares, so without the reader's own check these load bytes that lie past
# the entry (or deflated bytes) as weights.
WEIGHT = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(1))


def _rewrite(
    path: Path, obj: Any, key: str, cut: Callable[[bytes], bytes | None], compress: int | None = None
) -> None:
    """torch.save `obj` to `path`, then copy every zip entry back (its ZipInfo kept: stored, same order), the
    entry of storage `key` passed through `cut` (None drops it) and, with `compress`, recompressed."""
    torch.save(obj, path)
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            if info.filename.split("/", 1)[1] == f"data/{key}":
                data = cut(data)
                info.compress_type = info.compress_type if compress is None else compress
            if data is not None:
                target.writestr(info, data)


def _refusal(path: Path) -> str:
    """The one-line message open_checkpoint (and loading every tensor) refuses `path` with."""
    with pytest.raises(CheckpointError) as error:
        checkpoint = open_checkpoint(path)
        [t.load() for t in checkpoint.tensors]
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


SHORT = "a tensor's data holds {} bytes, fewer than its {} {} elements need"
CUTS: dict[str, tuple[Callable[[bytes], bytes | None], int | None, str]] = {  # cut, compression, reason
    "cut-to-100": (lambda d: d[:100], None, SHORT.format(100, 36, "float32")),
    "cut-to-0": (lambda d: b"", None, SHORT.format(0, 36, "float32")),
    "missing": (lambda d: None, None, "a tensor's data is missing from the zip archive"),
    "cut-and-deflated": (lambda d: d[:100], zipfile.ZIP_DEFLATED, SHORT.format(100, 36, "float32")),
}


@pytest.mark.parametrize("wrapper", ["state-dict", "namespace"])
@pytest.mark.parametrize("case", list(CUTS))
def test_storage_entry_shorter_than_its_storage_is_refused(tmp_path: Path, case: str, wrapper: str) -> None:
    """A storage entry cut short or missing refuses the file (torch.load and restricted-unpickler paths alike)."""
    cut, compress, reason = CUTS[case]
    obj: Any = {"conv.weight": WEIGHT}
    if wrapper == "namespace":  # torch.load refuses the Namespace: the restricted unpickler reads the file
        obj = {"hyper_parameters": argparse.Namespace(lr=0.1), "state_dict": obj}
    path = tmp_path / "w.pt"
    _rewrite(path, obj, "0", cut, compress)
    assert _refusal(path) == reason


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("1", SHORT.format(2, 4, "float32")),  # conv.bias: 1-D, never a conv weight
        ("2", SHORT.format(2, 8, "uint8")),  # a uint16 buffer: an UntypedStorage of 8 bytes
        ("3", SHORT.format(2, 36, "float32")),  # optimizer state, skipped when looking for weights
    ],
    ids=["bias", "uint16-buffer", "optimizer-state"],
)
def test_every_storage_is_checked_not_only_convs(tmp_path: Path, key: str, reason: str) -> None:
    """A short storage anywhere in the file means a damaged file, even when no conv weight uses it."""
    obj = {
        "model_state_dict": {
            "conv.weight": WEIGHT,
            "conv.bias": torch.zeros(4),
            "code": torch.tensor([1, 2, 3, 4], dtype=torch.uint16),
        },
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(4, 1, 3, 3)}}},
    }
    path = tmp_path / "w.pt"
    _rewrite(path, obj, key, lambda d: d[:2])
    assert _refusal(path) == reason


def test_views_of_a_larger_storage_load_exactly(tmp_path: Path) -> None:
    """Tensors that are views of one larger storage (its entry longer than each tensor) load exact values."""
    big = torch.randn(10, 1, 3, 3, generator=torch.Generator().manual_seed(2))
    views = {
        "first": big[:4],
        "last": big[6:],
        "strided": big[1:7].transpose(0, 1).reshape(1, 6, 3, 3)[:, ::2],
    }
    path = tmp_path / "w.pt"
    torch.save(views, path)
    with zipfile.ZipFile(path) as archive:
        assert [i.file_size for i in archive.infolist() if "/data/" in i.filename] == [big.nbytes]
    _assert_weights(path, views, "torch-state-dict", TORCH_LOAD)


def test_storage_entry_longer_than_its_storage_loads_the_declared_bytes(tmp_path: Path) -> None:
    """An entry with bytes after its storage (torch.save never writes one) still loads the storage's values."""
    path = tmp_path / "w.pt"
    _rewrite(path, {"conv.weight": WEIGHT}, "0", lambda d: d + b"\xff" * 64)
    _assert_weights(path, {"conv": WEIGHT}, "torch-state-dict", TORCH_LOAD)


def test_compressed_storage_entry_is_inflated_not_mapped(tmp_path: Path) -> None:
    """A deflated storage entry is read by torch.load without mmap (mapped, its deflated bytes would load)."""
    path = tmp_path / "w.pt"
    _rewrite(path, {"conv.weight": WEIGHT}, "0", bytes, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("w/data/0").compress_type == zipfile.ZIP_DEFLATED
    _assert_weights(path, {"conv": WEIGHT}, "torch-state-dict", TORCH_LOAD)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("second", ["w/data/0", "w/DATA/0"], ids=["same-name", "name-ignoring-case"])
def test_two_entries_of_one_name_are_refused(tmp_path: Path, second: str) -> None:
    """torch finds entries by name ignoring case and takes the first: a second entry of the name is refused."""
    path = tmp_path / "w.pt"
    _rewrite(path, {"conv.weight": WEIGHT}, "0", lambda d: d[:100])
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(second), WEIGHT.numpy().tobytes())
    assert _refusal(path) == "corrupt zip archive: two entries have the same name"


def test_storage_entry_running_into_the_next_entry_is_refused(tmp_path: Path) -> None:
    """An entry whose headers claim the storage's 144 bytes while the next entry starts after 100 is refused."""
    path = tmp_path / "w.pt"
    _rewrite(path, {"conv.weight": WEIGHT}, "0", lambda d: d[:100])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("w/data/0")
    struct.pack_into("<II", data, info.header_offset + 18, 144, 144)  # local header: compressed, plain size
    central = data.rindex(b"w/data/0") - 46  # the name's last copy follows its central directory record
    assert data[central : central + 4] == b"PK\x01\x02"
    struct.pack_into("<II", data, central + 20, 144, 144)
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("w/data/0").file_size == 144
    assert _refusal(path) == "corrupt zip archive: a tensor's data runs into the next entry"
