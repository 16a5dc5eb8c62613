"""The sampler table of docs/decisions.md, from the measurements of tests/generation/test_webui_fidelity.py.

    OPENESD_FIDELITY_TABLE=/tmp/fidelity.tsv .venv/bin/python -m pytest tests/generation/test_webui_fidelity.py
    python3 scripts/fidelity_table.py /tmp/fidelity.tsv > /tmp/table.md

Each cell is the lowest PSNR (dB, 8-bit images) of the worker's picture against the WebUI reference over
the cases of that cell, "exact" when every image is bit-identical, or "refused" when the worker refused it.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

SCHEDULERS = [
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
]
STANDARD = {"batch_size", "negative_prompt", "sampler_name", "scheduler", "steps"}


def parse(line: str) -> tuple[str, str, dict[str, str], float | None]:
    """(task, model, payload fields, PSNR or None when refused) of one table row."""
    case, value = line.rstrip("\n").split("\t")
    task, model, rest = case.split(" ", 2)
    fields = dict(re.findall(r"(\w+)=(.*?)(?= \w+=|$)", rest))
    if value.startswith("refused"):
        return task, model, fields, None
    return task, model, fields, float(value.split(" dB")[0])


def cell(values: list[float | None]) -> str:
    if not values:
        return ""
    if any(v is None for v in values):
        return "refused"
    low = min(v for v in values if v is not None)
    return "exact" if low == float("inf") else f"{low:.0f}"


def main(path: str) -> None:
    grid: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    columns: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    samplers: list[str] = []
    with open(path) as rows:
        for line in rows:
            task, model, fields, value = parse(line)
            sampler = fields.get("sampler_name", "")
            if sampler and sampler not in samplers:
                samplers.append(sampler)
            if task == "txt2img" and model.endswith("sdxl") and set(fields) == STANDARD:
                grid[sampler, fields["scheduler"]].append(value)
            elif task == "txt2img" and model.endswith("sd15") and set(fields) == STANDARD:
                columns["SD 1.5 (row)"][sampler].append(value)
            elif task == "img2img":
                columns["img2img 0.6"][sampler].append(value)
            elif fields.get("enable_hr") == "True":
                columns["hires"][sampler].append(value)
    extra = ["SD 1.5 (row)", "img2img 0.6", "hires"]
    print("| sampler | " + " | ".join(SCHEDULERS + extra) + " |")
    print("|" + "---|" * (len(SCHEDULERS) + len(extra) + 1))
    for sampler in samplers:
        cells = [cell(grid[sampler, scheduler]) for scheduler in SCHEDULERS]
        cells += [cell(columns[name][sampler]) for name in extra]
        if any(cells):
            print(f"| {sampler} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
