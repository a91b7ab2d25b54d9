"""The failure memory of a served deployment (flows/memory.py): a source that failed because of what it is is
skipped until it changes, said once; no server."""

from __future__ import annotations

import json
import os

from filterlake.errors import CheckpointError, LakeError, MetadataError, SourceError, TransientSourceError
from filterlake.sources.discover import Source
from flows.memory import FailureMemory, is_own_fault


def source(path, metadata=None, problem=None) -> Source:
    return Source("path", {"path": str(path)}, metadata, str(path), problem)


def test_a_failed_file_is_skipped_until_it_changes_and_said_once(tmp_path):
    bad, good = tmp_path / "bad.pth", tmp_path / "good.pt"
    bad.write_bytes(b"x" * 64)
    good.write_bytes(b"y" * 64)
    path = tmp_path / "home" / "memory.json"
    memory = FailureMemory.load(path)
    found = [source(bad), source(good)]
    assert memory.split(found) == (found, [])
    memory.remember(found, {str(bad): "unknown format"})
    memory.save()

    again = FailureMemory.load(path)
    run, skipped = again.split(found)
    assert run == [found[1]] and skipped == [{"source": str(bad), "reason": "unknown format", "new": True}]
    again.remember(found, {})
    again.save()
    run, skipped = FailureMemory.load(path).split(found)
    assert run == [found[1]] and [s["new"] for s in skipped] == [False]  # said once only

    bad.write_bytes(b"z" * 65)  # rewritten: tried again, and forgotten unless it fails again
    memory = FailureMemory.load(path)
    assert memory.split(found) == (found, []) and memory.entries == {}


def fail(memory: FailureMemory, src: Source, reason: str = "unknown format") -> None:
    """One run in which `src` fails."""
    assert memory.split([src]) == ([src], [])
    memory.remember([src], {src.uri: reason})


def test_a_touched_file_or_an_edited_sidecar_is_tried_again_and_a_deleted_one_forgotten(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"x" * 64)
    memory = FailureMemory(tmp_path / "memory.json")
    fail(memory, source(bad, {"domain": "faces"}))
    assert memory.split([source(bad, {"domain": "faces"})])[1] != []
    assert memory.split([source(bad, {"domain": "medical"})])[1] == []  # other metadata: tried again

    fail(memory, source(bad, problem="bad.pth.meta.json: bad"), "bad.pth.meta.json: bad")
    assert memory.split([source(bad)])[1] == []  # the sidecar was fixed

    fail(memory, source(bad))
    stat = bad.stat()
    os.utime(bad, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert memory.split([source(bad)])[1] == []  # same size, new mtime: tried again

    fail(memory, source(bad))
    memory.remember([], {})  # no longer found
    assert memory.entries == {}


def test_a_file_that_changes_while_it_is_read_is_tried_again(tmp_path):
    half = tmp_path / "half.pt"
    half.write_bytes(b"x" * 64)  # half copied when the run reads it ...
    memory = FailureMemory(tmp_path / "memory.json")
    assert memory.split([source(half)])[0] == [source(half)]
    half.write_bytes(b"x" * 128)  # ... complete before the run ends
    memory.remember([source(half)], {str(half): "truncated"})
    assert memory.split([source(half)]) == ([source(half)], [])


def test_an_unreadable_memory_is_empty_and_urls_are_never_remembered(tmp_path):
    path = tmp_path / "memory.json"
    for text in ("not json", "[]", json.dumps({"version": 99, "failures": {"a": {}}}), json.dumps({"x": 1})):
        path.write_text(text)
        assert FailureMemory.load(path).entries == {}
    url = Source("url", {"url": "http://h/x.pt"}, None, "http://h/x.pt")
    memory = FailureMemory(path)
    fail(memory, url, "HTTP 404")
    assert memory.entries == {} and memory.split([url]) == ([url], [])


def test_only_failures_of_the_source_itself_are_remembered():
    assert is_own_fault(CheckpointError("x.pt", "unknown format"))
    assert is_own_fault(MetadataError("domain: not a string")) and is_own_fault(SourceError("x: missing"))
    assert not is_own_fault(LakeError("lake: read-only")) and not is_own_fault(
        TransientSourceError("HTTP 503")
    )
    assert not is_own_fault(RuntimeError("a bug")) and not is_own_fault(None)
