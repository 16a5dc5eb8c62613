"""What a selectable script is to the runner: its cells (plain txt2img/img2img payloads, each run as a
lone job would be) and how it puts their results together."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from openesd.generation.types import GenerationResult, ModelFiles


class ScriptPlan(Protocol):
    """A script expanded for one job."""

    cells: list[dict]  # the payloads to run, in order, without script_name

    def run_order(self) -> list[int]:
        """The order to run the cells in (their results still come back in `cells` order)."""
        ...

    def compose(self, results: list[GenerationResult]) -> GenerationResult:
        """The job's answer from the cells' results (one per cell, in `cells` order)."""
        ...


# (task, payload, script_args, models) -> plan; validates the script's own arguments.
PlanScript = Callable[[str, dict, list, ModelFiles], ScriptPlan]


def cell_payload(payload: dict) -> dict:
    """The payload without the script: a copy a cell may change freely (nested dicts copied on write)."""
    return copy.deepcopy({k: v for k, v in payload.items() if k not in ("script_name", "script_args")})


@dataclass
class Answer:
    """The images (PNG bytes) and per-image facts of a script's answer, turned into the WebUI's `info`."""

    images: list[bytes] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)

    def add(self, png: bytes, facts: dict[str, Any]) -> None:
        self.images.append(png)
        self.infotexts.append(facts["infotext"])
        self.prompts.append(facts["prompt"])
        self.negative_prompts.append(facts["negative_prompt"])
        self.seeds.append(facts["seed"])
        self.subseeds.append(facts["subseed"])

    def result(self, first: GenerationResult, index_of_first_image: int) -> GenerationResult:
        """The answer with the first cell's `info` as the template, its lists replaced by this answer's."""
        info = json.loads(first.info or "{}")
        info.update(
            all_prompts=self.prompts,
            all_negative_prompts=self.negative_prompts,
            all_seeds=self.seeds,
            all_subseeds=self.subseeds,
            infotexts=self.infotexts,
            index_of_first_image=index_of_first_image,
        )
        return GenerationResult(images=self.images, info=json.dumps(info))


def image_facts(result: GenerationResult, index: int = 0) -> dict[str, Any]:
    """One image's infotext, prompts and seeds from a lone job's `info`."""
    info = json.loads(result.info or "{}")
    return {
        "infotext": info["infotexts"][index],
        "prompt": info["all_prompts"][index],
        "negative_prompt": info["all_negative_prompts"][index],
        "seed": info["all_seeds"][index],
        "subseed": info["all_subseeds"][index],
    }


def with_entries(infotext: str, entries: dict[str, Any]) -> str:
    """The infotext with `entries` added where the WebUI puts a script's extra_generation_params: last, before
    `Version`."""
    from openesd.generation.tasks.infotext import quote

    text = ", ".join(f"{k}: {quote(v)}" for k, v in entries.items() if v is not None)
    if not text:
        return infotext
    head, sep, tail = infotext.rpartition(", Version: ")
    return f"{head}, {text}{sep}{tail}" if sep else f"{infotext}, {text}"


def load_png(data: bytes) -> Any:
    """A result's PNG as a loaded PIL image."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image
