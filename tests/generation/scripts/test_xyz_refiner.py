"""The X/Y/Z plot's refiner axis (ESD's payload shape) on the tiny SDXL base and refiner: each cell is the
lone job's PNG."""

from __future__ import annotations

from tests.generation.scripts.test_xyz import REFINER, alone, esd_args, xyz_payload
from tests.support.generation_jobs import png, run


def test_refiner_axis_cells_equal_lone_jobs(generator, sdxl_checkpoint, sdxl_refiner_checkpoint):
    models = {"Stable-diffusion": [sdxl_checkpoint, sdxl_refiner_checkpoint]}
    args = esd_args(REFINER, ["None", sdxl_refiner_checkpoint.name], y_type=0, y_values="", lone=True)
    result = run(generator, "txt2img", xyz_payload(args, seed=5, steps=2, refiner_switch_at=0.5), models)
    assert len(result.images) == 3
    plain = alone(generator, models, 5, steps=2)
    refined = alone(
        generator, models, 5, steps=2, refiner_checkpoint=sdxl_refiner_checkpoint.name, refiner_switch_at=0.5
    )
    assert result.images[1] == plain and result.images[2] == refined and plain != refined
    assert "Refiner: tiny-sdxl-refiner" in png(result.images[2]).text["parameters"]
