"""Prompts from file or textbox (the WebUI's scripts/prompts_from_file.py): one job per line, a line being a
prompt or `--prompt "..." --negative_prompt ... --steps N ...` options; every line's images in order."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Callable

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.payload.reader import Reader
from openesd.generation.scripts import _axes
from openesd.generation.scripts.base import Answer, cell_payload, image_facts
from openesd.generation.types import GenerationResult, ModelFiles

ARGS_110 = ["checkbox_iterate", "checkbox_iterate_batch", "prompt_position", "prompt_txt"]
ARGS_OLD = ["checkbox_iterate", "checkbox_iterate_batch", "prompt_txt"]  # before "Insert prompts at the"
POSITIONS = ("start", "end")


def _bool(text: str) -> bool:
    return text == "true"  # the WebUI's process_boolean_tag: anything else is false


# The WebUI's prompt_tags: option -> how its value is read. `None`: accepted and without effect on the
# images here (output paths, saving, display text; sampler_index, which the WebUI 1.10 no longer reads).
OPTIONS: dict[str, Callable[[str], Any] | None] = {
    "sd_model": str,
    "outpath_samples": None,
    "outpath_grids": None,
    "prompt_for_display": None,
    "prompt": str,
    "negative_prompt": str,
    "styles": str,
    "seed": int,
    "subseed_strength": float,
    "subseed": int,
    "seed_resize_from_h": int,
    "seed_resize_from_w": int,
    "sampler_index": None,
    "sampler_name": str,
    "batch_size": int,
    "n_iter": int,
    "steps": int,
    "cfg_scale": float,
    "width": int,
    "height": int,
    "restore_faces": _bool,
    "tiling": _bool,
    "do_not_save_samples": None,
    "do_not_save_grid": None,
}


def parse_line(line: str) -> dict[str, Any]:
    """A line's options as the WebUI's cmdargs reads them (shell quoting; a prompt runs to the next `--`);
    a line without `--` is the prompt itself. An unknown option fails naming it and the known ones."""
    if "--" not in line:
        return {"prompt": line}
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise PayloadError(f"Prompts from file: line {line!r} cannot be split into options: {exc}") from None
    options: dict[str, Any] = {}
    pos = 0
    while pos < len(words):
        word = words[pos]
        if not word.startswith("--"):
            raise PayloadError(f'Prompts from file: {word!r} in line {line!r} must start with "--"')
        if pos + 1 >= len(words):
            raise PayloadError(f"Prompts from file: option {word} in line {line!r} has no value")
        tag = word[2:]
        if tag in ("prompt", "negative_prompt"):
            end = pos + 2
            while end < len(words) and not words[end].startswith("--"):
                end += 1
            options[tag] = " ".join(words[pos + 1 : end])
            pos = end
            continue
        if tag not in OPTIONS:
            raise UnsupportedFeature(
                f"Prompts from file: unknown option {word} in line {line!r}; known: --{', --'.join(OPTIONS)}"
            )
        options[tag] = _value(tag, words[pos + 1], line)
        pos += 2
    return options


def _value(tag: str, text: str, line: str) -> Any:
    read = OPTIONS[tag]
    if read is None:
        return None
    try:
        return read(text)
    except ValueError:
        raise PayloadError(f"Prompts from file: --{tag} {text!r} in line {line!r} is not a valid value") from None


def _read_args(script_args: list) -> tuple[bool, bool, str, str]:
    if len(script_args) > len(ARGS_110):
        raise PayloadError(
            f"Prompts from file or textbox takes {len(ARGS_110)} script_args ({', '.join(ARGS_110)}), "
            f"got {len(script_args)}"
        )
    names = ARGS_110 if len(script_args) == len(ARGS_110) else ARGS_OLD
    r = Reader(dict(zip(names, script_args)))
    position = r.str("prompt_position", "start")
    if position not in POSITIONS:
        raise PayloadError(f"Prompts from file: prompt_position {position!r} is not one of {', '.join(POSITIONS)}")
    return r.bool("checkbox_iterate"), r.bool("checkbox_iterate_batch"), position, r.str("prompt_txt")


def plan(task: str, payload: dict, script_args: list, models: ModelFiles) -> LinesPlan:
    from openesd.generation.payload.scripts import apply_scripts
    from openesd.generation.payload.settings import read_settings
    from openesd.generation.tasks import seeds

    # 1. Arguments and lines.
    iterate, same_seed, position, text = _read_args(script_args)
    lines = [parse_line(line) for line in (raw.strip() for raw in text.splitlines()) if line]
    if not lines:
        raise PayloadError("Prompts from file or textbox: prompt_txt holds no lines")
    base = cell_payload(payload)
    settings = read_settings(base, task)
    apply_scripts(settings)

    # 2. Seeds: with either checkbox a -1 seed is fixed once; iterating adds batch_size * n_iter per line.
    seed = settings.seed
    if (iterate or same_seed) and seed == -1:
        seed = seeds.resolve_seed(seed)
    cells = []
    for options in lines:
        _axes.set_seed(base, "seed", seed)
        cells.append(_cell(base, options, position))
        if iterate:
            seed += settings.batch_size * settings.n_iter
    return LinesPlan(cells)


def _cell(base: dict, options: dict[str, Any], position: str) -> dict:
    cell = cell_payload(base)
    for key, value in options.items():
        if value is None:
            continue
        if key == "sd_model":
            cell["override_settings"] = {**(cell.get("override_settings") or {}), "sd_model_checkpoint": value}
        elif key in ("seed", "subseed", "subseed_strength"):
            _axes.set_seed(cell, key, value)
        elif key == "styles":
            cell["styles"] = [value]  # refused by the settings reader: this worker has no saved styles
        else:
            cell[key] = value
    # A line's prompt joins the payload's own (with a space, at the start or the end) when both have one.
    for key in ("prompt", "negative_prompt"):
        own, line = base.get(key) or "", options.get(key)
        if line and own:
            cell[key] = f"{line} {own}" if position == "start" else f"{own} {line}"
    return cell


@dataclass
class LinesPlan:
    cells: list[dict]

    def run_order(self) -> list[int]:
        return list(range(len(self.cells)))

    def compose(self, results: list[GenerationResult]) -> GenerationResult:
        answer = Answer()
        for result in results:
            for index, png in enumerate(result.images):
                answer.add(png, image_facts(result, index))
        return answer.result(results[0], 0)
