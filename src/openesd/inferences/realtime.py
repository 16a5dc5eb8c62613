"""A real-time job runs inside its request (esd-api.md §8.4). Its start registers the engine submission
after commit, as every start does, and comes back `RUNNING`; then the request's transaction is committed
early, by the request boundary's `commit_now`, so that the engine sees the job, and the request waits for
its end. The one place a request commits before it ends; services themselves never commit."""

from __future__ import annotations

from openesd.inferences.service import InferenceService, JobOutcome, Stage
from openesd.metadata.db import commit_now


def run_to_end(outcome: JobOutcome, inferences: InferenceService) -> JobOutcome:
    """`outcome` as is, or a real-time job's end: committed, submitted, waited for (`GatewayTimeout`)."""
    if outcome.stage is not Stage.RUNNING:
        return outcome
    commit_now(inferences.session)
    return inferences.wait(outcome.data["inference_id"])
