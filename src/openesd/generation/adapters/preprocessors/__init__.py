"""sd-webui-controlnet's preprocessors (`module`): their names and old aliases, slider defaults, and the map
each makes at the unit's processor resolution; a module this worker cannot run is refused naming why."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.adapters.preprocessors import _annotators as nets
from openesd.generation.adapters.preprocessors import _basic as basic
from openesd.generation.adapters.preprocessors import _detectors as detect
from openesd.generation.adapters.preprocessors._annotators import ANNOTATOR_TYPE


@dataclass(frozen=True)
class Module:
    """A preprocessor: its operation, the extension's slider defaults, the annotator files it needs."""

    run: Callable[..., Any]
    threshold_a: float = -1  # -1: the module has no such slider
    threshold_b: float = -1
    annotators: tuple[nets.Annotator, ...] = ()


_BASIC = {
    "none": Module(basic.none),
    "invert": Module(basic.invert),
    "canny": Module(basic.canny, 100, 200),
    "scribble_xdog": Module(basic.scribble_xdog, 32),
    "threshold": Module(basic.threshold, 127),
    "binary": Module(basic.binary, 0),
    "blur_gaussian": Module(basic.blur_gaussian, 9.0),
    "tile_resample": Module(basic.tile_resample, 1.0),
    # The colour fix itself is a UNet hook (adapters/_colorfix.py); the control image is the unit's image.
    "tile_colorfix": Module(basic.none, 8.0),
    "tile_colorfix+sharp": Module(basic.none, 8.0, 1.0),
    "shuffle": Module(basic.shuffle),
    "lineart_standard": Module(basic.lineart_standard),
    "t2ia_color_grid": Module(basic.color),
    "recolor_luminance": Module(basic.recolor_luminance, 1.0),
    "recolor_intensity": Module(basic.recolor_intensity, 1.0),
}
_PIDI, _HED = (nets.PIDINET,), (nets.HED,)
_POSE = {
    "openpose": ("body", (nets.BODY,)),
    "openpose_hand": ("body+hand", (nets.BODY, nets.HAND)),
    "openpose_face": ("body+face", (nets.BODY, nets.FACE)),
    "openpose_faceonly": ("face", (nets.BODY, nets.FACE)),
    "openpose_full": ("body+hand+face", (nets.BODY, nets.HAND, nets.FACE)),
}
_WITH_WEIGHTS = {
    "softedge_pidinet": Module(detect.pidinet, annotators=_PIDI),
    "softedge_pidisafe": Module(partial(detect.pidinet, safe=True), annotators=_PIDI),
    "scribble_pidinet": Module(detect.scribbled(detect.pidinet), annotators=_PIDI),
    "t2ia_sketch_pidi": Module(partial(detect.pidinet, sketch=True), annotators=_PIDI),
    "softedge_hed": Module(detect.hed, annotators=_HED),
    "softedge_hedsafe": Module(partial(detect.hed, safe=True), annotators=_HED),
    "scribble_hed": Module(detect.scribbled(detect.hed), annotators=_HED),
    "lineart_realistic": Module(detect.lineart, annotators=(nets.LINEART,)),
    "lineart_coarse": Module(detect.lineart, annotators=(nets.LINEART_COARSE,)),
    "lineart_anime": Module(detect.lineart_anime, annotators=(nets.LINEART_ANIME,)),
    "mlsd": Module(detect.mlsd, 0.1, 0.1, annotators=(nets.MLSD,)),
    "depth_midas": Module(detect.midas, annotators=(nets.MIDAS,)),
    "normal_midas": Module(partial(detect.midas, normal=True), 0.4, annotators=(nets.MIDAS,)),
    "normal_bae": Module(detect.normal_bae, annotators=(nets.NORMAL_BAE,)),
    "depth_zoe": Module(detect.zoe, annotators=(nets.ZOE,)),
    "depth_leres": Module(detect.leres, 0, 0, annotators=(nets.LERES,)),
    **{name: Module(partial(detect.openpose, parts=parts), annotators=files) for name, (parts, files) in _POSE.items()},
}
MODULES: dict[str, Module] = {**_BASIC, **_WITH_WEIGHTS}

# The extension's API takes its internal names and its UI labels alike; ControlNet 1.0 names too.
ALIASES = {
    "invert (from white bg & black line)": "invert",
    "lineart_standard (from white bg & black line)": "lineart_standard",
    "color": "t2ia_color_grid",
    "pidinet": "softedge_pidinet",
    "pidinet_safe": "softedge_pidisafe",
    "pidinet_scribble": "scribble_pidinet",
    "pidinet_sketch": "t2ia_sketch_pidi",
    "hed": "softedge_hed",
    "hed_safe": "softedge_hedsafe",
    "fake_scribble": "scribble_hed",
    "lineart": "lineart_realistic",
    "depth": "depth_midas",
    "normal_map": "normal_midas",
}

_NOT_PORTED = "its detector is not ported to this worker"
# The extension builds DINOv2 through torch.hub (a download); controlnet-aux 0.0.10 has no such network.
_NO_DEPTH_ANYTHING = "its DINOv2 network is neither in controlnet-aux 0.0.10 nor ported; use depth_midas or depth_zoe"
_REFUSED_WHY = {
    "dw_openpose_full": "DWPose runs two ONNX networks (yolox_l.onnx, dw-ll_ucoco_384.onnx) whose pre- and "
    "post-processing is not ported to this worker; use openpose_full",
    "depth_anything": _NO_DEPTH_ANYTHING,
    "depth_anything_v2": _NO_DEPTH_ANYTHING,
    "depth_leres++": "its boosting merge network (latest_net_G.pth, pix2pix) is not ported; use depth_leres",
    "seg_ofade20k": "OneFormer needs detectron2, which this worker does not install",
    "seg_ofcoco": "OneFormer needs detectron2, which this worker does not install",
    "seg_ufade20k": "UniFormer needs mmcv/mmseg, which this worker does not install",
    "seg_anime_face": _NOT_PORTED,
}
_OLD_NAMES = {
    "oneformer_ade20k": "seg_ofade20k",
    "oneformer_coco": "seg_ofcoco",
    "segmentation": "seg_ufade20k",
    "anime_face_segment": "seg_anime_face",
}
REFUSED = {
    **_REFUSED_WHY,
    **{old: _REFUSED_WHY[new] for old, new in _OLD_NAMES.items()},
    **{
        name: _NOT_PORTED
        for name in (
            "animal_openpose",
            "depth_hand_refiner",
            "densepose",
            "densepose_parula",
            "lineart_anime_denoise",
            "softedge_teed",
            "te_hed",
            "mediapipe_face",
        )
    },
}


def canonical(module: Any, index: int, also: tuple[str, ...] = ()) -> str:
    """The module's name as this registry knows it; an unknown or refused one fails naming the supported ones
    (these and `also`, the modules ControlNet units run outside this registry)."""
    name = str(module or "none").strip().lower()
    name = ALIASES.get(name, name)
    if name in MODULES:
        return name
    supported = ", ".join((*MODULES, *also))
    if name in REFUSED:
        raise UnsupportedFeature(
            f"ControlNet unit {index} module {module!r} is not supported: {REFUSED[name]}; supported: {supported}"
        )
    raise UnsupportedFeature(f"ControlNet unit {index} module {module!r} is not supported; supported: {supported}")


def annotator_files(module: str) -> list[str]:
    """The `ControlNet-annotator` files a module needs (the extension's file names)."""
    return [spec.file for spec in MODULES[module].annotators]


def thresholds(module: str, unit: dict) -> tuple[float, float]:
    """threshold_a/b as the unit sends them; missing or negative means the extension's slider default."""
    spec = MODULES[module]
    return _slider(unit, "threshold_a", spec.threshold_a), _slider(unit, "threshold_b", spec.threshold_b)


def _slider(unit: dict, key: str, default: float) -> float:
    value = unit.get(key)
    try:
        number = float(value) if value is not None else -1.0
    except (TypeError, ValueError):
        raise PayloadError(f"ControlNet {key} {value!r} is not a number") from None
    return default if number < 0 else number


def preprocess(
    rgb: Any, module: str, unit: dict, resolution: int, files: list[Path], device: Any = None, seed: int | None = None
) -> Any:
    """The module's detected map (uint8 HxWx3) of `rgb` at `resolution`, before the resize to the job's size."""
    import numpy as np

    spec = MODULES[module]
    a, b = thresholds(module, unit)
    if spec.annotators:
        device = device or "cpu"
        nets.check_files(spec.annotators, module, files)
        out = spec.run(rgb, resolution, a, b, device, [nets.network(n, module, files, device) for n in spec.annotators])
    else:
        # The extension seeds numpy from the job's seeds so `shuffle` repeats; a private RandomState does the same.
        out = spec.run(rgb, resolution, a, b, np.random.RandomState(seed))
    return basic.hwc3(out)


__all__ = ["ANNOTATOR_TYPE", "MODULES", "REFUSED", "annotator_files", "canonical", "preprocess", "thresholds"]
