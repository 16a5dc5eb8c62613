"""Model merges on the Ray engine: each one a Ray task running `merge_runner.run`, one at a time as locally.

`RayMergeRunner` keeps `MergeRunner`'s queue, close and reporting and starts a task where the local
runner spawns a process; the task returns the merge's event as the local worker sends it.
"""

from __future__ import annotations

from openesd.execution.base import MergeSpec
from openesd.execution.events import MergeEvent, MergeFailed
from openesd.execution.merge_runner import MergeRunner, run


def task_name(checkpoint_id: str) -> str:
    return f"openesd-merge-{checkpoint_id}"


class RayMergeRunner(MergeRunner):
    """Merges as Ray tasks of one CPU (the merge streams tensors on the CPU), never retried."""

    def _execute(self, spec: MergeSpec) -> MergeEvent:
        import ray
        from ray.exceptions import RayError

        ref = (
            ray.remote(run)
            .options(name=task_name(spec.checkpoint_id), num_cpus=1, num_gpus=0, max_retries=0)
            .remote(self._values, spec)
        )
        self._running = ref
        try:
            return ray.get(ref)
        except RayError as error:  # the worker died, or the task was cancelled at close
            return MergeFailed(spec.checkpoint_id, f"the merge task died before it finished ({type(error).__name__})")
        finally:
            self._running = None

    def _cancel(self) -> None:
        import ray

        ref = self._running
        if ref is not None:
            ray.cancel(ref, force=True)
