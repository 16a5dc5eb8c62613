"""`client.inferences.cancel` and `openesd jobs cancel` against the real app (in-process, both databases; an
engine that runs nothing): what the SDK returns and the CLI prints, and that `wait_for` ends on `cancelled`."""

from __future__ import annotations

import httpx
import pytest

from openesd.cli import _session
from openesd.client import Client
from openesd.client._transport import ESDError, JobFailed
from tests.api.conftest import API_KEY, make_client  # noqa: F401  (shared fixture)
from tests.cli.conftest import cli  # noqa: F401  (shared fixture)
from tests.inferences.conftest import ready  # noqa: F401  (shared fixture)
from tests.inferences.test_rules import created, esd  # noqa: F401  (shared fixture)


@pytest.fixture
def sdk(esd) -> Client:
    """The SDK over HTTP to the in-process app (through its TestClient)."""

    def forward(request: httpx.Request) -> httpx.Response:
        answer = esd.http.request(request.method, str(request.url), headers=request.headers, content=request.read())
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return Client("http://testserver/prod", API_KEY, transport=httpx.MockTransport(forward))


def test_the_sdk_cancels_and_wait_for_ends_on_cancelled(esd, sdk):
    waiting = created(esd)
    assert sdk.inferences.cancel(waiting)["status"] == "cancelled"
    running = created(esd, payload_string="{}")
    answer = sdk.inferences.cancel(running)  # the engine reported the drop after the answer was made
    assert (answer["status"], answer["cancelled_by"]) == ("inprogress", "api")
    with pytest.raises(JobFailed, match="is cancelled: cancelled by api"):
        sdk.inferences.wait_for(running, timeout=5)
    assert [j["InferenceJobId"] for j in sdk.inferences.list(status="cancelled")] == [running, waiting]
    with pytest.raises(ESDError, match="has already ended with status cancelled") as refused:
        sdk.inferences.cancel(running)
    assert refused.value.status == 400


def test_the_cli_cancels_a_job_and_says_what_became_of_it(esd, sdk, cli, monkeypatch):
    monkeypatch.setattr(_session, "client", lambda: sdk)
    waiting, running = created(esd), created(esd, payload_string="{}")
    assert cli("jobs", "cancel", waiting).stdout == f"cancelled {waiting}\n"
    assert (
        cli("jobs", "cancel", running).stdout == f"cancelling {running}: its worker stops at its next sampling step\n"
    )
    assert {j["InferenceJobId"] for j in cli.json("jobs", "list", "--status", "cancelled")} == {waiting, running}
    refused = cli("jobs", "cancel", waiting, ok=False)
    assert refused.exit_code == 1 and "has already ended with status cancelled" in refused.stderr
