"""prefect.yaml: every deployment's entrypoint loads and its parameters and schedules are valid (no server)."""

from __future__ import annotations

import yaml
from prefect.client.schemas.schedules import construct_schedule
from prefect.flows import load_flow_from_entrypoint

from tests.conftest import REPO


def test_prefect_yaml_deployments_match_the_ingestion_flow(monkeypatch):
    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name == "filterlake-ingest"
        flow.validate_parameters(deployment["parameters"])
        for schedule in deployment["schedules"]:
            construct_schedule(**schedule)
