"""Wheel sources: a package index that cannot be reached is a transient (retried) error, a missing package or
a wrong checksum is not. Real pip runs against a closed port on 127.0.0.1 and against an empty local index."""

from __future__ import annotations

import socket

import pytest

from filterlake.errors import SourceError, TransientSourceError
from filterlake.sources.wheel import fetch_wheel


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def isolated_pip(monkeypatch, tmp_path):
    """pip without the machine's configuration (its local indexes and caps)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    return monkeypatch


def test_an_unreachable_index_is_transient(isolated_pip, tmp_path):
    """Regression: every pip failure was a plain SourceError, so the flow never retried a network failure."""
    isolated_pip.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{_closed_port()}/simple")
    isolated_pip.setenv("PIP_RETRIES", "1")  # pip names the connection error only when it retries
    isolated_pip.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(
        TransientSourceError, match=r"wheel somepkg==1\.0: the package index could not be reached"
    ):
        fetch_wheel("somepkg==1.0", tmp_path / "wheels")


def test_a_missing_package_is_not_transient(isolated_pip, tmp_path):
    empty = tmp_path / "index"
    empty.mkdir()
    isolated_pip.setenv("PIP_NO_INDEX", "1")
    isolated_pip.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(SourceError, match="pip download failed") as caught:
        fetch_wheel("no-such-package-here==9.9", tmp_path / "wheels")
    assert not isinstance(caught.value, TransientSourceError)


def test_an_unpinned_requirement_is_refused(tmp_path):
    with pytest.raises(SourceError, match="pin an exact version"):
        fetch_wheel("numpy", tmp_path / "wheels")
