"""Several jobs on one model as one UNet batch: each job runs its own code path in its own thread, in turns
(one thread at a time), and their UNet calls meet at a gate that runs them as one call.

Only the UNet calls are merged; everything else a job does (text encoding, LoRA and VAE setup, noise,
the sampler, decoding) runs as if it were alone, one job at a time, so no shared model state is ever
touched by two jobs at once. A row of a merged call equals the same row of the job's own call on the
CPU when no 2-D matmul mixes the jobs' rows (oneDNN picks another kernel for another row count there):
the merged call computes those small matmuls (time embeddings) per job, and calls of batch 1 (CFG 1) run
alone, because a convolution of one row takes another kernel than one of several (docs: batching).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from openesd.generation.sampling.driver import UNET_GATE


@dataclass
class _Call:
    unet: Any
    x: Any
    t: Any
    kwargs: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """Calls with equal keys can be one batch: same UNet, same shapes past the batch axis, same options."""
        if self.x.shape[0] < 2:
            return ("alone", id(self))
        return (id(self.unet), _signature(self.x), _signature(self.t), _signature(self.kwargs))


class Gathering:
    """The turn and the gate of one batch of jobs (see the module doc). `merged_calls` and `rows` count the
    UNet calls it made and the rows they carried, so a caller can see that batching happened."""

    def __init__(self, jobs: int):
        self._baton = threading.Lock()  # held by the one job thread that runs now
        self._live = jobs
        self._pending: list[_Call] = []
        self.merged_calls = 0
        self.rows = 0

    def enter(self) -> None:
        self._baton.acquire()

    def leave(self) -> None:
        """A job ended (done, failed or cancelled): the others no longer wait for its next call."""
        self._live -= 1
        self._flush_if_all_waiting()
        self._baton.release()

    def call(self, unet: Any, x: Any, t: Any, kwargs: dict[str, Any]) -> Any:
        """One UNet call of the running job; returns its own rows of the merged call."""
        entry = _Call(unet, x, t, kwargs)
        self._pending.append(entry)
        if not self._flush_if_all_waiting():
            self._baton.release()  # let the next job run up to its own call
            entry.done.wait()
            self._baton.acquire()
        if entry.error is not None:
            raise entry.error
        return entry.result

    def _flush_if_all_waiting(self) -> bool:
        if not self._pending or len(self._pending) < self._live:
            return False
        pending, self._pending = self._pending, []
        groups: dict[tuple[Any, ...], list[_Call]] = {}
        for entry in pending:
            groups.setdefault(entry.key, []).append(entry)
        for group in groups.values():
            self._run(group)
        return True

    def _run(self, group: list[_Call]) -> None:
        import torch

        sizes = [entry.x.shape[0] for entry in group]
        try:
            # The thread that flushes may be between pipeline calls, outside their no_grad.
            with torch.no_grad(), _rows_apart(sizes if len(group) > 1 else None):
                first = group[0]
                output = first.unet(
                    torch.cat([e.x for e in group]),
                    torch.cat([e.t for e in group]),
                    return_dict=False,
                    **_merge([e.kwargs for e in group]),
                )[0]
            for entry, rows in zip(group, output.split(sizes)):
                entry.result = rows
        except Exception as error:  # every job of the call learns it; the others of the batch go on
            for entry in group:
                entry.error = error
        self.merged_calls += 1
        self.rows += sum(sizes)
        for entry in group:
            entry.done.set()


def run_gathered(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run each task (one job) in its own thread with its UNet calls gathered; each task's return value, or
    the exception it raised, in the order given."""
    gathering = Gathering(len(tasks))
    results: list[Any] = [None] * len(tasks)

    def job(index: int) -> None:
        UNET_GATE.set(gathering.call)  # each thread starts with its own context: only these jobs use the gate
        gathering.enter()
        try:
            results[index] = tasks[index]()
        except BaseException as error:  # handed back: the worker reports it on this job only
            results[index] = error
        finally:
            gathering.leave()

    threads = [threading.Thread(target=job, args=(i,), name=f"openesd-batch-{i}") for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@contextlib.contextmanager
def _rows_apart(sizes: list[int] | None) -> Iterator[None]:
    """2-D linear layers (the time and added-condition embeddings, a few rows each) run per job inside the
    merged call, so each job's rows meet the kernel its own call used. Only one job thread runs at a time,
    so swapping the module function for the call is seen by that call alone."""
    import torch.nn.functional as F

    if sizes is None:
        yield
        return
    plain, total = F.linear, sum(sizes)

    def linear(x: Any, weight: Any, bias: Any = None) -> Any:
        import torch

        if x.ndim == 2 and x.shape[0] == total:
            return torch.cat([plain(part, weight, bias) for part in x.split(sizes)])
        return plain(x, weight, bias)

    F.linear = linear
    try:
        yield
    finally:
        F.linear = plain


def _signature(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return tuple(sorted((k, _signature(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return ("tensor", tuple(shape[1:]), str(value.dtype), str(value.device))
    return ("value", repr(value))


def _merge(calls: list[Any]) -> Any:
    """The calls' keyword arguments as one batch: tensors joined on the batch axis, other values (equal in a
    group, by its key) taken once."""
    import torch

    first = calls[0]
    if isinstance(first, dict):
        return {key: _merge([c[key] for c in calls]) for key in first}
    if isinstance(first, (list, tuple)):
        return [_merge([c[i] for c in calls]) for i in range(len(first))]
    if getattr(first, "ndim", 0) > 0:
        return torch.cat(calls)
    return first
