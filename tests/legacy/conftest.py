"""Legacy-route tests: an app per test (SQLite, and PostgreSQL where the test asks for `database_url`),
with a recording engine in place of worker processes so no test here waits for a model to load."""

from __future__ import annotations

import pytest

from openesd.api.deps import get_engine
from tests.api.conftest import API_KEY, ESDClient, esd, make_client  # noqa: F401  (shared fixtures)
from tests.checkpoints.conftest import file_server  # noqa: F401

KEY = {"x-api-key": API_KEY}


class RecordingEngine:
    """Stands in for the local engine: remembers what it was asked to run."""

    def __init__(self):
        self.deployed, self.undeployed, self.submitted, self.trainings, self.merges = [], [], [], [], []

    def deploy(self, spec):
        self.deployed.append(spec)

    def undeploy(self, endpoint_id):
        self.undeployed.append(endpoint_id)

    def submit(self, job):
        self.submitted.append(job)

    def submit_training(self, spec):
        self.trainings.append(spec)

    def cancel(self, job_id):
        pass

    def stop_training(self, training_id):
        pass

    def submit_merge(self, spec):
        self.merges.append(spec)

    def instance_count(self, endpoint_id):
        return 0

    def capacity(self):
        return {"cpu": 8, "ml.g4dn.2xlarge": 8}

    def close(self):
        pass


@pytest.fixture
def legacy(make_client) -> ESDClient:
    client = make_client(allow_private_url_imports=True, legacy_upload_wait_seconds=10)
    client.engine = RecordingEngine()
    client.http.app.dependency_overrides[get_engine] = lambda: client.engine
    return client


def set_endpoint_status(client: ESDClient, name: str, status: str) -> None:
    """What the engine's readiness report would do (the recording engine never reports)."""
    from openesd.endpoints.repository import EndpointRepository

    with client.http.app.state.sessionmaker.begin() as session:
        EndpointRepository(session).by_name(name).endpoint_status = status


def legacy_create(client: ESDClient, path: str = "/prod/endpoints", **body) -> dict:
    response = client.post(path, json={"instance_type": "cpu", "initial_instance_count": "1", **body})
    assert response.status_code == 200, response.text
    return response.json()
