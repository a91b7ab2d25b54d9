"""The ingestion flow on Hugging Face Hub sources, through the same discover and fetch stages as the CLI: a local
Hub over HTTP (tests/sources/hub_fixtures.py), a sharded checkpoint ingested, a repository with no 3x3 conv
named once as failed with nothing downloaded, and a re-run served from the task cache."""

from __future__ import annotations

from typing import Self

import pytest
from huggingface_hub import constants  # noqa: F401  loaded here, in a clean environment: read at import
from safetensors.torch import save

from flows.ingest import ingest_flow, run_summary
from tests.sources.hub_fixtures import HubRepo, LocalHub, conv_tensors, flat_tensors, serving, sharded_repo
from tests.sources.test_hf import assert_filters, lake_model

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


def test_the_flow_ingests_a_hub_repository_and_names_the_one_passed_over(tmp_path, monkeypatch):
    tensors = conv_tensors(5)
    repos = {
        "org/sharded": HubRepo(sharded_repo(tensors)),
        "org/flat": HubRepo({"model.safetensors": save(flat_tensors())}),
    }
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "filterlake-cache"))
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with serving(LocalHub(repos)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        sharded, flat = (hub.repos[r].commit for r in ("org/sharded", "org/flat"))
        parameters = {
            "sources": ["hf://org/sharded", "hf://org/flat"],
            "lake": str(tmp_path / "lake"),
            "refresh": False,
        }
        state = ingest_flow(**parameters, return_state=True)
        summary = run_summary(state)
        assert state.is_completed(), state.message
        rows = {row["source"]: row for row in summary["models"]}
        index = f"hf://org/sharded@{sharded}/model.safetensors.index.json"
        assert (rows[index]["status"], rows[index]["filters"], rows[index]["name"]) == (
            "ingested",
            22,
            "org/sharded",
        )
        assert [f["message"] for f in summary["failures"]] == [
            f"hf://org/flat@{flat}/model.safetensors: no 3x3 convolution in the safetensors header; nothing downloaded"
        ]
        assert not hub.served("org/flat", "model.safetensors", "HEAD")
        row, filters = lake_model(tmp_path, rows[index]["model_id"])
        assert_filters(filters, tensors)
        assert row["source_uri"] == index

        again = run_summary(ingest_flow(**parameters, return_state=True))
        assert {r["source"]: r["status"] for r in again["models"]}[index] == "cached"


class FailFirst(int):
    """An HTTP status the local Hub answers to its first `n` requests only (a Hub that recovers)."""

    def __new__(cls, status: int, n: int) -> Self:
        value = super().__new__(cls, status)
        value.left = n
        return value

    def __bool__(self) -> bool:  # read once per request by the Hub's handler
        self.left -= 1
        return self.left >= 0


def test_a_hub_down_while_the_flow_lists_it_is_retried(tmp_path, monkeypatch):
    """The Hub answers 503 to the first requests of the run: discovery is retried as fetches are, and the
    repository is ingested."""
    import flows.tasks

    monkeypatch.setattr(flows.tasks, "FETCH_RETRY_DELAYS", [1, 1, 1])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "filterlake-cache"))
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with serving(
        LocalHub({"org/sharded": HubRepo(sharded_repo(conv_tensors(6)))}, failing=FailFirst(503, 1))
    ) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        state = ingest_flow(
            sources=["hf://org/sharded"], lake=str(tmp_path / "lake"), refresh=False, return_state=True
        )
        summary = run_summary(state)
        assert state.is_completed() and [r["status"] for r in summary["models"]] == ["ingested"], (
            state.message
        )
        assert [s.status for s in hub.log][:1] == [503] and hub.log[0].path.startswith(
            "/api/models/org/sharded"
        )
