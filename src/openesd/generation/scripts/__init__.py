"""The WebUI's selectable scripts (`script_name` + positional `script_args`): X/Y/Z plot, Prompt matrix,
Prompts from file or textbox. A script expands the payload into cells, each a plain payload run exactly
as a lone job; every cell is validated before any model loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from openesd.errors import PayloadError
from openesd.generation.payload.script_names import SUPPORTED, script_key
from openesd.generation.types import GenerationResult, ModelFiles

if TYPE_CHECKING:
    from openesd.generation.scripts.base import PlanScript


ProgressCallback = Callable[[int, int], None]
__all__ = ["SUPPORTED", "find_script", "run_script", "wanted"]


def find_script(name: Any) -> PlanScript:
    """The script a script_name names (the WebUI matches titles ignoring case); others fail listing the valid."""
    from openesd.generation.scripts import prompt_matrix, prompts_from_file, xyz

    registry: dict[str, PlanScript] = {
        "x/y/z plot": xyz.plan,
        "prompt matrix": prompt_matrix.plan,
        "prompts from file or textbox": prompts_from_file.plan,
    }
    return registry[script_key(name)]


def wanted(payload: dict) -> bool:
    """Whether the payload selects a script (the WebUI's "None" and an empty name select none)."""
    return payload.get("script_name") not in (None, "", "None")


class Runner(Protocol):
    """What the scripts need from the worker: validate one cell without loading, run one cell as a lone job."""

    def check(self, task: str, payload: dict, models: ModelFiles) -> tuple[Any, Any]: ...

    def run_cell(
        self, task: str, payload: dict, models: ModelFiles, progress: ProgressCallback
    ) -> GenerationResult: ...


def run_script(
    runner: Runner, task: str, payload: dict, models: ModelFiles, progress: ProgressCallback | None
) -> GenerationResult:
    # 1. Expand the script and validate every cell before any model loads.
    script = find_script(payload.get("script_name"))
    args = payload.get("script_args") or []
    if not isinstance(args, list):
        raise PayloadError(f"script_args must be a list, got {args!r}")
    plan = script(task, payload, args, models)
    estimates = [_estimate(runner.check(task, cell, models)[0]) for cell in plan.cells]

    # 2. Run each cell as a lone job, counting progress over all of them.
    counter = CellProgress(estimates, progress)
    results: dict[int, GenerationResult] = {}
    for index in plan.run_order():
        results[index] = runner.run_cell(task, plan.cells[index], models, counter.cell(index))
    counter.finish()
    return plan.compose([results[i] for i in range(len(plan.cells))])


def _estimate(settings: Any) -> int:
    # Model calls a cell will make, before its sampler plans the real number (second-order samplers: more).
    hires = settings.hires
    second = (hires.steps or settings.steps) if hires is not None else 0
    return int(settings.n_iter * (settings.steps + second))


@dataclass
class CellProgress:
    """One (step, total) sequence over all cells: each cell's real total replaces its estimate once known."""

    totals: list[int]
    callback: ProgressCallback | None
    done: int = 0

    def cell(self, index: int) -> ProgressCallback:
        start = self.done

        def report(step: int, total: int) -> None:
            self.totals[index] = total
            self.done = start + step
            if self.callback is not None:
                self.callback(self.done, max(sum(self.totals), self.done))

        return report

    def finish(self) -> None:
        total = sum(self.totals)
        if self.callback is not None:
            self.callback(total, total)
