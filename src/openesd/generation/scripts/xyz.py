"""The X/Y/Z plot (the WebUI's scripts/xyz_grid.py): one cell per combination of the axes' values, each run
as a lone job, then a grid per Z value with the axes' legend and a grid of those grids."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import permutations
from typing import Any

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.payload.reader import Reader
from openesd.generation.scripts import _axes, _values, grid
from openesd.generation.scripts.base import Answer, cell_payload, image_facts, load_png, with_entries
from openesd.generation.types import GenerationResult, ModelFiles

TITLE = "X/Y/Z plot"
_AXIS_ARGS = ["x_type", "x_values", "x_values_dropdown", "y_type", "y_values", "y_values_dropdown"]
_AXIS_ARGS += ["z_type", "z_values", "z_values_dropdown"]
# The WebUI 1.10's argument order, and the one before "vary seeds" (1.7, ESD's cloud image: 15 args).
ARGS_110 = [*_AXIS_ARGS, "draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds"]
ARGS_110 += ["vary_seeds_x", "vary_seeds_y", "vary_seeds_z", "margin_size", "csv_mode"]
ARGS_17 = [*_AXIS_ARGS, "draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds"]
ARGS_17 += ["margin_size", "csv_mode", "raw_mode"]
MAX_GRID_MEGAPIXELS = 200  # the WebUI's img_max_size_mp default
DEFAULTS = {"x_type": 1, "y_type": 0, "z_type": 0, "draw_legend": True, "margin_size": 0}


@dataclass
class AxisValues:
    axis: _axes.Axis
    text: str  # as the infotext's "X Values" writes it
    values: list[Any]

    def labels(self) -> list[str]:
        return [self.axis.text(v) for v in self.values]


def read_args(script_args: list, task: str) -> tuple[dict[str, Any], list[AxisValues], str]:
    """The options, the three axes with their values, and the WebUI version the argument layout is from."""
    if len(script_args) == 17 or len(script_args) > len(ARGS_110):
        raise PayloadError(
            f"X/Y/Z plot takes {len(ARGS_110)} script_args (WebUI 1.10: {', '.join(ARGS_110)}) or 15 "
            f"(WebUI 1.7, without the vary_seeds_*), got {len(script_args)}"
        )
    version, names = ("1.10", ARGS_110) if len(script_args) >= len(ARGS_110) else ("1.7", ARGS_17)
    raw = {**DEFAULTS, **dict(zip(names, script_args))}
    r = Reader(raw)
    options: dict[str, Any] = {
        "draw_legend": r.bool("draw_legend", True),
        "include_lone_images": r.bool("include_lone_images"),
        "include_sub_grids": r.bool("include_sub_grids"),
        "no_fixed_seeds": r.bool("no_fixed_seeds"),
        "vary_seeds": [r.bool(f"vary_seeds_{a}") for a in "xyz"],
        "margin_size": r.int("margin_size", 0, 0, 500),
        "csv_mode": r.bool("csv_mode"),
    }
    if r.bool("raw_mode"):
        raise UnsupportedFeature("X/Y/Z plot: raw_mode (one value per line) is not supported; use comma lists")
    axis_list = _axes.axis_list(task, version)
    return options, [_axis_values(axis_list, raw, name, options["csv_mode"]) for name in "xyz"], version


def _axis_values(axis_list: _axes.AxisList, raw: dict, name: str, csv_mode: bool) -> AxisValues:
    which = name.upper()
    axis = axis_list.find(raw.get(f"{name}_type", 0), which)
    if axis.label == "Nothing":
        return AxisValues(axis, "", [0])
    _axes.check_refused(axis, which)
    text = Reader(raw).str(f"{name}_values")
    dropdown = raw.get(f"{name}_values_dropdown") or []
    if not isinstance(dropdown, list) or not all(isinstance(v, str) for v in dropdown):
        raise PayloadError(f"X/Y/Z plot: {name}_values_dropdown must be a list of strings, got {dropdown!r}")
    if axis.choices and not csv_mode and dropdown:  # the WebUI reads a dropdown axis from its list
        values, text = list(dropdown), _values.join_csv(dropdown)
    else:
        values = _values.split_csv(text)
    return AxisValues(axis, text, _typed(axis, values, which))


def _typed(axis: _axes.Axis, values: list[Any], which: str) -> list[Any]:
    if axis.kind is int:
        values = _values.expand_ints(values)
    elif axis.kind is float:
        values = _values.expand_floats(values)
    elif axis.kind == _axes.PERMUTATIONS:
        return [list(p) for p in permutations(values)]
    if not values:
        raise PayloadError(f"X/Y/Z plot: the {which} axis ({axis.label}) has no values")
    return _values.convert(values, axis.kind if axis.kind in (int, float) else str, axis.label)


def plan(task: str, payload: dict, script_args: list, models: ModelFiles) -> XyzPlan:
    from openesd.generation.payload.scripts import apply_scripts
    from openesd.generation.payload.settings import read_settings
    from openesd.generation.tasks import seeds

    # 1. The script's arguments and the job they vary.
    options, axes, _ = read_args(script_args, task)
    base = cell_payload(payload)
    settings = read_settings(base, task)
    apply_scripts(settings)
    if settings.batch_size * settings.n_iter > 1:
        raise UnsupportedFeature(
            "X/Y/Z plot with batch_size or n_iter above 1 is not supported (the WebUI puts each cell's batch "
            f"grid in the plot); got batch_size {settings.batch_size}, n_iter {settings.n_iter}"
        )

    _refuse_idle_axes(axes, settings, task)
    megapixels = len(axes[0].values) * len(axes[1].values) * len(axes[2].values) * settings.width * settings.height
    if megapixels / 1e6 >= MAX_GRID_MEGAPIXELS:
        raise PayloadError(
            f"X/Y/Z plot: the grid would have {megapixels / 1e6:.0f} megapixels (at most {MAX_GRID_MEGAPIXELS})"
        )

    # 2. Seeds: -1 becomes one random seed for every cell (and every -1 on a seed axis its own), as fix_seed.
    fixed = not options["no_fixed_seeds"]
    seed = seeds.resolve_seed(settings.seed) if fixed else settings.seed
    _axes.set_seed(base, "seed", seed)
    if fixed and settings.subseed < 0:
        _axes.set_seed(base, "subseed", seeds.resolve_seed(settings.subseed))
    for entry in axes:
        if fixed and entry.axis.label in ("Seed", "Var. seed"):
            entry.values = [seeds.resolve_seed(v) if v == -1 else v for v in entry.values]

    # 3. One payload per cell, in the grid's order (x fastest, then y, then z).
    cells = [
        _cell(base, axes, (ix, iy, iz), options["vary_seeds"], models)
        for iz in range(len(axes[2].values))
        for iy in range(len(axes[1].values))
        for ix in range(len(axes[0].values))
    ]
    return XyzPlan(cells, axes, options, fixed)


def _refuse_idle_axes(axes: list[AxisValues], settings: Any, task: str) -> None:
    """An axis that cannot change any cell of this job (the WebUI would draw identical cells) fails instead."""
    labels = {entry.axis.label for entry in axes}
    idle = []
    if settings.hires is None and task == "txt2img":
        idle += [(label, "enable_hr is off") for label in ("Hires steps", "Hires sampler", "Hires upscaler")]
        idle.append(("Denoising", "txt2img without enable_hr does not denoise an image"))
    if not settings.refiner_checkpoint and "Refiner checkpoint" not in labels:
        idle.append(("Refiner switch at", "the job has no refiner checkpoint"))
    for label, why in idle:
        if label in labels:
            raise UnsupportedFeature(f"X/Y/Z plot: the {label} axis changes nothing here: {why}")


def _cell(
    base: dict, axes: list[AxisValues], index: tuple[int, int, int], vary: list[bool], models: ModelFiles
) -> dict:
    cell = copy.deepcopy(base)
    for entry, i in zip(axes, index):
        entry.axis.apply(cell, entry.values[i], _axes.AxisContext(entry.values, models))
    # "Vary seeds": each cell along a chosen axis takes the next seed, counted over the chosen axes.
    xdim = len(axes[0].values) if vary[0] else 1
    ydim = len(axes[1].values) if vary[1] else 1
    offset = (index[0] if vary[0] else 0) + (index[1] * xdim if vary[1] else 0)
    offset += index[2] * xdim * ydim if vary[2] else 0
    if offset:
        _axes.set_seed(cell, "seed", int(cell["seed"]) + offset)
    return cell


@dataclass
class XyzPlan:
    cells: list[dict]
    axes: list[AxisValues]
    options: dict[str, Any]
    fixed_seeds: bool

    def run_order(self) -> list[int]:
        """Cell indices in the WebUI's order: the costliest axis (a model load) outermost."""
        nx, ny = len(self.axes[0].values), len(self.axes[1].values)
        outer = _loop_order(*(entry.axis.cost for entry in self.axes))
        return sorted(
            range(len(self.cells)), key=lambda k: tuple((k % nx, k // nx % ny, k // (nx * ny))[a] for a in outer)
        )

    def compose(self, results: list[GenerationResult]) -> GenerationResult:
        """The grid of grids, then (as asked) each Z value's grid, then each cell's own image."""
        from openesd.generation.images import encode_png

        nx, ny, nz = (len(entry.values) for entry in self.axes)
        cells = [load_png(r.images[0]) for r in results]
        facts = [image_facts(r) for r in results]
        legend = self.options["draw_legend"]
        subgrids = []
        for iz in range(nz):
            first = iz * nx * ny
            sub = grid.image_grid(cells[first : first + nx * ny], rows=ny)
            if legend:
                w, h = _largest(cells[first : first + nx * ny])  # cells of another Size are centred
                sub = grid.annotate(
                    sub, w, h, grid.labels(self.axes[0].labels()), grid.labels(self.axes[1].labels()),
                    self.options["margin_size"],
                )  # fmt: skip
            subgrids.append(sub)
        main = grid.image_grid(subgrids, rows=1)
        if legend:
            main = grid.annotate(main, *_largest(subgrids), grid.labels(self.axes[2].labels()), [[grid.Annotation()]])

        answer = Answer()
        xy_entries = {"Script": TITLE, **self._entries(0), **self._entries(1)}
        main_text = with_entries(facts[0]["infotext"], {**xy_entries, **self._entries(2)})
        answer.add(encode_png(main, main_text), {**facts[0], "infotext": main_text})
        if self.options["include_sub_grids"]:
            for iz, sub in enumerate(subgrids):
                text = with_entries(facts[iz * nx * ny]["infotext"], xy_entries)
                answer.add(encode_png(sub, text), {**facts[iz * nx * ny], "infotext": text})
        grids = len(answer.images)
        if self.options["include_lone_images"]:
            for result, fact in zip(results, facts):
                answer.add(result.images[0], fact)  # the lone job's own PNG, byte for byte
        return answer.result(results[0], grids)

    def _entries(self, axis: int) -> dict[str, Any]:
        entry, name = self.axes[axis], "XYZ"[axis]
        if entry.axis.label == "Nothing":
            return {}
        fixed = self.fixed_seeds and entry.axis.label in ("Seed", "Var. seed")
        return {
            f"{name} Type": entry.axis.label,
            f"{name} Values": entry.text,
            f"Fixed {name} Values": ", ".join(str(v) for v in entry.values) if fixed else None,
        }


def _loop_order(cx: float, cy: float, cz: float) -> tuple[int, int, int]:
    """Axes (0 x, 1 y, 2 z) from outermost loop to innermost, as the WebUI picks them from the axes' costs."""
    if cx > cy and cx > cz:
        return (0, 1, 2) if cy > cz else (0, 2, 1)
    if cy > cx and cy > cz:
        return (1, 0, 2) if cx > cz else (1, 2, 0)
    if cz > cx and cz > cy:
        return (2, 0, 1) if cx > cy else (2, 1, 0)
    return (2, 1, 0)


def _largest(images: list[Any]) -> tuple[int, int]:
    return max(image.width for image in images), max(image.height for image in images)
