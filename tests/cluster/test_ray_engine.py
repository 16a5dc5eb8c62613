"""The engine contract suite (tests/execution/test_endpoints.py, test_jobs.py, test_merges.py) run against the
Ray engine on a local CPU-only Ray instance: the same tests, imported, with this folder's `engine` fixture."""

from __future__ import annotations

import pytest

from tests.execution.test_batching import (  # noqa: F401
    test_queued_compatible_jobs_run_as_one_batch_with_the_bytes_they_get_alone,
)
from tests.execution.test_cancel import (  # noqa: F401
    test_a_running_job_is_cancelled_mid_sampling_and_the_worker_takes_the_next,
)
from tests.execution.test_endpoints import (  # noqa: F401  (collected here, on the Ray engine)
    test_an_endpoint_whose_workers_cannot_start_fails_with_the_error,
    test_async_autoscaling_goes_to_zero_when_idle_and_out_again_for_a_job,
    test_deploy_reports_ready_and_the_instances,
    test_real_time_keeps_one_instance_however_idle,
)
from tests.execution.test_jobs import (  # noqa: F401
    test_a_job_for_an_endpoint_the_engine_does_not_run_fails_at_once,
    test_a_job_reports_started_progress_and_its_images,
    test_a_killed_workers_job_is_retried_once_and_succeeds,
    test_undeploy_fails_the_running_and_queued_jobs,
)
from tests.execution.test_merges import (  # noqa: F401
    test_a_merge_stores_its_output_and_reports_the_files_hash,
    test_a_merge_that_cannot_run_fails_with_the_reason_and_stores_nothing,
)

# Left to the local engine's run: a rejected payload (the same `_endpoint_process._serve` code answers it), the exit
# code of a twice-killed worker (Ray reports the death, not the process's exit status) and scale-out on
# backlog (it passes on Ray too, in about 30 s: kept out of CI for time).
pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
