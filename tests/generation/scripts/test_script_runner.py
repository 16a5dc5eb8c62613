"""The script runner with a stand-in worker: every cell is checked before any runs, cells run in the WebUI's
order (model loads outermost), and the answer holds the grids and sub-images the options ask for."""

from __future__ import annotations

import json

from PIL import Image

from openesd.generation.images import encode_png
from openesd.generation.payload.settings import read_settings
from openesd.generation.scripts import _axes, run_script
from openesd.generation.types import GenerationResult
from tests.support.generation_jobs import png, txt2img_payload


class StandInWorker:
    """Answers each cell with a flat image whose colour encodes the cell's steps and seed."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def check(self, task, payload, models):
        self.calls.append(("check", payload))
        return read_settings(payload, task), None

    def run_cell(self, task, payload, models, progress):
        self.calls.append(("run", payload))
        progress(payload["steps"], payload["steps"])
        size = (payload["width"], payload["height"])
        image = Image.new("RGB", size, (payload["steps"] * 20, payload["seed"] % 256, 0))
        text = f"{payload['prompt']}\nSteps: {payload['steps']}, Seed: {payload['seed']}, Version: OpenESD"
        facts = {"all_prompts": [payload["prompt"]], "all_negative_prompts": [""], "all_seeds": [payload["seed"]]}
        info = {**facts, "all_subseeds": [0], "infotexts": [text], "seed": payload["seed"]}
        return GenerationResult(images=[encode_png(image, text)], info=json.dumps(info))


def test_cells_are_all_checked_first_and_run_checkpoint_outermost():
    worker = StandInWorker()
    models = {"Stable-diffusion": ["a.safetensors", "b.safetensors"]}
    # X = Steps 1,2; Y = Checkpoint name a, b (WebUI 1.10 index 11); Z = Seed 7, 8; sub-grids and sub-images.
    args = [4, "1,2", [], 11, "", ["a", "b"], 1, "7,8", [], False, True, True, False, False, False, False, 0, False]
    payload = txt2img_payload(script_name="X/Y/Z plot", script_args=args)
    progress = []
    result = run_script(worker, "txt2img", payload, models, lambda s, t: progress.append((s, t)))

    kinds = [kind for kind, _ in worker.calls]
    assert kinds == ["check"] * 8 + ["run"] * 8
    runs = [(p["override_settings"]["sd_model_checkpoint"], p["seed"], p["steps"]) for k, p in worker.calls[8:]]
    assert [r[0] for r in runs] == ["a"] * 4 + ["b"] * 4  # the checkpoint axis is the outer loop
    assert progress[-1] == (12, 12)

    # Main grid (2 sub-grids side by side), 2 sub-grids (2x2 cells), then the 8 cells in x, y, z order.
    sizes = [png(image).size for image in result.images]
    assert sizes == [(256, 128), (128, 128), (128, 128)] + [(64, 64)] * 8
    cell_seeds = json.loads(result.info)["all_seeds"][3:]
    assert cell_seeds == [7, 7, 7, 7, 8, 8, 8, 8]
    main = png(result.images[0]).convert("RGB")
    assert main.getpixel((64 + 10, 64 + 10)) == (40, 7, 0)  # z=7 grid: x=2 steps, y=checkpoint b
    assert main.getpixel((128 + 10, 10)) == (20, 8, 0)  # z=8 grid starts at x 128


def test_vary_seeds_counts_over_the_chosen_axes():
    worker = StandInWorker()
    args = [4, "1,2,3", [], 0, "", [], 0, "", [], False, True, False, False, True, False, False, 0, False]
    run_script(worker, "txt2img", txt2img_payload(seed=100, script_name="x/y/z plot", script_args=args), {}, None)
    assert [p["seed"] for kind, p in worker.calls if kind == "run"] == [100, 101, 102]


def test_size_axis_cells_of_two_sizes_share_one_legend_grid():
    worker = StandInWorker()
    args = ["Size", "64x64, 64x96", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, 0, False]
    result = run_script(worker, "txt2img", txt2img_payload(script_name="x/y/z plot", script_args=args), {}, None)
    runs = [(p["width"], p["height"]) for kind, p in worker.calls if kind == "run"]
    assert runs == [(64, 64), (64, 96)]
    width, height = png(result.images[0]).size
    assert width == 2 * 64 and height > 96  # cells 96 high (the smaller centred), a legend band on top


def test_img2img_reads_its_own_axis_list():
    worker = StandInWorker()
    # img2img's WebUI 1.10 list has Image CFG Scale and no hires axes: 10 is Checkpoint name there, not Hires sampler.
    args = [9, "", ["Euler", "DDIM"], "Denoising", "0.3, 0.6", [], 0, "", []]
    args += [False, True, False, False, False, False, False, 0, False]
    payload = txt2img_payload(init_images=["x"], script_name="x/y/z plot", script_args=args)
    run_script(worker, "img2img", payload, {}, None)
    runs = [(p["sampler_name"], p["denoising_strength"]) for kind, p in worker.calls if kind == "run"]
    assert runs == [("Euler", 0.3), ("DDIM", 0.3), ("Euler", 0.6), ("DDIM", 0.6)]
    assert _axes.axis_list("img2img", "1.10").find(10, "X").label == "Checkpoint name"
