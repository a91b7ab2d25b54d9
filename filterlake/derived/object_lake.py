"""The analysis of an object lake (`s3://`): run in its working copy (lake/working_copy.py), each model derived
by a process that first pulls the model's files and then pushes the derived files it wrote, so a Dask worker on
another machine derives from and into the bucket; the driver keeps every result in its own copy."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from filterlake.derived.per_model import ModelMap
from filterlake.errors import FilterlakeError
from filterlake.lake.location import ObjectLake
from filterlake.lake.object_commit import derived_folders
from filterlake.lake.objects import ObjectInfo
from filterlake.lake.working_copy import WorkingCopy, working_copy

T = TypeVar("T")


@dataclass(frozen=True)
class DeriveInCopy(Generic[T]):
    """`compute(model_id)` in a working copy: the model's files pulled first (its base objects and its files in
    the per-model derived `folders`), its derived files pushed after. Returns the result and the objects of the
    model's derived files, for the driver's copy. Picklable: a worker runs it in the copy at the same path."""

    copy: WorkingCopy
    compute: Callable[[str], T]
    folders: tuple[str, ...]

    def __call__(self, model_id: str) -> tuple[T, dict[str, ObjectInfo]]:
        self.copy.pull_model(model_id, self.folders)
        result = self.compute(model_id)
        return result, self.copy.push_model(model_id)


def in_working_copy(copy: WorkingCopy, model_map: ModelMap) -> ModelMap:
    """`model_map` with each model derived by `DeriveInCopy`; every model's derived files are made current in
    this process's copy as its result arrives (no request when the worker shares the copy)."""

    def mapped(compute: Callable[[str], T], model_ids: list[str]) -> Iterator[T]:
        task = DeriveInCopy(copy, compute, tuple(derived_folders(copy.lake)))
        for result, derived in model_map(task, model_ids):
            copy.fetch(derived)
            yield result

    return mapped


def _named(exc: FilterlakeError, copy: WorkingCopy) -> FilterlakeError:
    """The error with the working copy's folder replaced by the lake's URI (the user gave the URI)."""
    return type(exc)(str(exc).replace(str(copy.root), copy.lake.uri))


def local_copy(lake: ObjectLake, filters: bool = True) -> Path:
    """The working copy of `lake`, pulled (with the filters when `filters`): a lake folder to read."""
    copy = working_copy(lake)
    with copy.exclusive():
        copy.pull(filters)
    return copy.root


@contextlib.contextmanager
def analysed_in_copy(lake: ObjectLake, model_map: ModelMap) -> Iterator[tuple[Path, ModelMap]]:
    """(working copy folder, ModelMap) to analyse `lake` with, the copy held by this analysis alone: it is pulled
    first (without filters: each model's come with its task) and the derived files the block wrote are pushed
    when it ends without an error. A FilterlakeError names the lake's URI, not the copy's folder."""
    copy = working_copy(lake)
    with copy.exclusive():
        pulled = copy.pull(filters=False)
        try:
            yield copy.root, in_working_copy(copy, model_map)
        except FilterlakeError as exc:
            raise _named(exc, copy) from None
        copy.push(pulled.seen)
