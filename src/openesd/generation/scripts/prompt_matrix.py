"""Prompt matrix (the WebUI's scripts/prompt_matrix.py): `a | b | c` gives every combination of the parts
after the first, one image each, and a grid labelled with the parts each image has (grey: left out)."""

from __future__ import annotations

from dataclasses import dataclass

from openesd.errors import PayloadError
from openesd.generation.payload.reader import Reader
from openesd.generation.scripts import _axes, grid
from openesd.generation.scripts.base import Answer, cell_payload, image_facts, load_png
from openesd.generation.types import GenerationResult, ModelFiles

ARGS = ["put_at_start", "different_seeds", "prompt_type", "variations_delimiter", "margin_size"]
PROMPT_TYPES = ("positive", "negative")
DELIMITERS = {"comma": ", ", "space": " "}


def combinations(prompt: str, put_at_start: bool, delimiter: str) -> tuple[list[str], list[str]]:
    """(the parts split at `|`, one prompt per combination): combination n has part i + 1 where bit i of n is set."""
    parts = prompt.split("|")
    prompts = []
    for n in range(2 ** (len(parts) - 1)):
        chosen = [text.strip().strip(",") for i, text in enumerate(parts[1:]) if n & (1 << i)]
        ordered = [*chosen, parts[0]] if put_at_start else [parts[0], *chosen]
        prompts.append(delimiter.join(ordered))
    return parts, prompts


def plan(task: str, payload: dict, script_args: list, models: ModelFiles) -> MatrixPlan:
    from openesd.generation.payload.scripts import apply_scripts
    from openesd.generation.payload.settings import read_settings
    from openesd.generation.tasks import seeds

    # 1. Arguments: [put_at_start, different_seeds, prompt_type, variations_delimiter, margin_size].
    if len(script_args) > len(ARGS):
        raise PayloadError(f"Prompt matrix takes {len(ARGS)} script_args ({', '.join(ARGS)}), got {len(script_args)}")
    r = Reader(dict(zip(ARGS, script_args)))
    put_at_start, different_seeds = r.bool("put_at_start"), r.bool("different_seeds")
    prompt_type, delimiter = r.str("prompt_type", "positive"), r.str("variations_delimiter", "comma")
    if prompt_type not in PROMPT_TYPES:
        raise PayloadError(f"Prompt matrix: prompt_type {prompt_type!r} is not one of {', '.join(PROMPT_TYPES)}")
    if delimiter not in DELIMITERS:
        raise PayloadError(f"Prompt matrix: variations_delimiter {delimiter!r} is not one of {', '.join(DELIMITERS)}")

    # 2. The prompts, and seeds fixed once: every image gets the seed (+ its index with different seeds).
    base = cell_payload(payload)
    settings = read_settings(base, task)
    apply_scripts(settings)
    key = "prompt" if prompt_type == "positive" else "negative_prompt"
    parts, prompts = combinations(getattr(settings, key), put_at_start, DELIMITERS[delimiter])
    seed, subseed = seeds.resolve_seed(settings.seed), seeds.resolve_seed(settings.subseed)

    # 3. One lone image per prompt (the WebUI's one job of n_iter batches gives each image its own prompt,
    # seed and subseed + index, which is what these cells get).
    cells = []
    for i, text in enumerate(prompts):
        cell = {**base, key: text, "batch_size": 1, "n_iter": 1}
        _axes.set_seed(cell, "seed", seed + (i if different_seeds else 0))
        _axes.set_seed(cell, "subseed", subseed + i)
        cells.append(cell)
    return MatrixPlan(cells, parts, r.int("margin_size", 0, 0, 500))


@dataclass
class MatrixPlan:
    cells: list[dict]
    parts: list[str]
    margin: int

    def run_order(self) -> list[int]:
        return list(range(len(self.cells)))

    def compose(self, results: list[GenerationResult]) -> GenerationResult:
        """The grid (2^(k//2) rows for k variable parts) with its legend, then every image."""
        from openesd.generation.images import encode_png

        images = [load_png(r.images[0]) for r in results]
        rows = 1 << ((len(self.parts) - 1) // 2)
        matrix = grid.image_grid(images, rows=rows)
        columns, row_texts = grid.prompt_matrix_legend(self.parts)
        matrix = grid.annotate(matrix, images[0].width, images[0].height, columns, row_texts, self.margin)
        facts = [image_facts(r) for r in results]
        answer = Answer()
        answer.add(encode_png(matrix, facts[0]["infotext"]), facts[0])
        for result, fact in zip(results, facts):
            answer.add(result.images[0], fact)
        return answer.result(results[0], 1)
