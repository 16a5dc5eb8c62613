"""ControlNet units of `alwayson_scripts.controlnet` (sd-webui-controlnet's API) -> a ControlNet and call kwargs."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openesd.generation.adapters import _colorfix
from openesd.generation.adapters import _control_images as images
from openesd.generation.adapters import _inpaint_control as inpaint
from openesd.generation.adapters import _reference, ip_adapter, preprocessors, t2i_adapter
from openesd.generation.adapters._controlnet_loading import load_controlnet
from openesd.generation.adapters._units import number as _number
from openesd.generation.adapters._units import resolve_model as _resolve_model
from openesd.errors import ModelError, PayloadError, UnsupportedFeature
from openesd.generation.types import ModelFiles

CONTROL_MODES = {"balanced": 0, "my prompt is more important": 1, "controlnet is more important": 2}
_MODE_NAMES = ("Balanced", "My prompt is more important", "ControlNet is more important")
_RESIZE_NAMES = ("Just Resize", "Crop and Resize", "Resize and Fill")
PROMPT_DECAY = 0.825  # the extension's soft injection: block i of n gets weight * 0.825 ** (n - 1 - i)
CACHE_SIZE = 4
_CACHE: OrderedDict[tuple, Any] = OrderedDict()  # loaded ControlNets, least recently used first
_PROMPT_PRIORITY = "_openesd_prompt_priority"


@dataclass
class ControlNetInputs:
    """The ControlNet (or MultiControlNetModel; None when only adapter units are on) for the pipeline, the
    call's keyword arguments, and what adapter units add to each sampling pass."""

    controlnet: Any
    kwargs: dict[str, Any]  # image, controlnet_conditioning_scale, control_guidance_start/end, guess_mode
    infotext: dict[str, str] = field(default_factory=dict)  # "ControlNet 0" -> the extension's quoted summary
    extras: list[Any] = field(default_factory=list)  # ConditionedUNet extras (IP-Adapter embeds)
    restores: list[Any] = field(default_factory=list)  # inpaint_only units (_inpaint_control.InpaintRestore)
    detected_maps: list[Any] = field(default_factory=list)  # the units' control images the job returns

    def attach(self, run: Any, hires: bool = False) -> None:
        """Give a sampling pass (`tasks.passes.Pass`) the units' per-call UNet inputs and prediction
        corrections; the hires pass keeps only the size-independent ones."""
        run.unet.use_extras([e for e in self.extras if e.keep_in_hires or not hires])
        for item in [*self.restores, *(e for e in self.extras if hasattr(e, "attach"))]:
            if not hires:
                item.attach(run)
            elif item.keep_in_hires:
                item.attach(run, hires=True)

    def finish(self, images: list[Any]) -> list[Any]:
        """The final PIL images after the units' post-processing (inpaint_only pastes the unmasked area back)."""
        for restore in self.restores:
            images = [restore.finish(image) for image in images]
        return images


@dataclass
class _Unit:
    index: int
    model: Path
    image: Any  # PIL image at the generation size
    weight: float
    start: float
    end: float
    mode: int
    summary: str = ""
    restore: Any = None  # inpaint_only's restore of the unmasked area
    colorfix: Any = None  # tile_colorfix's rewrite of the prediction (_colorfix.ColorFix)
    save_detected_map: bool = True


def prepare_units(
    units: list[dict],
    models: ModelFiles,
    width: int,
    height: int,
    device: Any,
    dtype: Any,
    init_image: Any = None,
    unet: Any = None,
    init_mask: Any = None,
    seed: int | None = None,
) -> ControlNetInputs | None:
    """None when no unit is enabled; a unit without an image uses `init_image` (img2img) when given.

    `kwargs` suit the txt2img ControlNet pipelines; img2img and inpaint ones name the image `control_image`.
    IP-Adapter units go into `unet` (the checkpoint's own UNet) for this job. `seed` is `numpy_seed`'s, for
    the preprocessors that draw random numbers (shuffle).
    """
    enabled = [(i, unit) for i, unit in enumerate(units or []) if _enabled(unit, i)]
    if unet is not None:
        _reference.release(unet)  # a previous job's reference_only, before IP-Adapter rebuilds processors
    adapter_units = [(i, u) for i, u in enabled if ip_adapter.handles(_module(u))]
    extras = _image_prompts(adapter_units, models, unet, init_image)
    references = [(i, u) for i, u in enabled if _reference.handles(_module(u))]
    extras += [_reference_unit(u, i, init_image, width, height, unet) for i, u in references]
    taken = {i for i, _ in adapter_units + references}
    where = _Where(models, width, height, init_image, init_mask, device, seed)
    parsed = [_parse(u, i, where) for i, u in enabled if i not in taken]
    extras += [u.colorfix for u in parsed if u.colorfix is not None]
    adapters = [t2i_adapter.is_adapter(u.model) for u in parsed]
    extras += [_adapter_residuals(u, unet) for u, is_adapter in zip(parsed, adapters) if is_adapter]
    parsed = [u for u, is_adapter in zip(parsed, adapters) if not is_adapter]
    if not parsed:
        return ControlNetInputs(None, {}, {}, extras) if extras else None
    modes = {u.mode for u in parsed}
    if 2 in modes and len(modes) > 1:
        raise PayloadError(
            "ControlNet control_mode 'ControlNet is more important' cannot be mixed with other "
            "modes in one job; give every enabled unit the same control_mode"
        )
    nets = [_cached(u.model, device, dtype) for u in parsed]
    for net, unit in zip(nets, parsed):
        setattr(net, _PROMPT_PRIORITY, unit.mode == 1)
    kwargs = {
        "image": [u.image for u in parsed],
        "controlnet_conditioning_scale": [u.weight for u in parsed],
        "control_guidance_start": [u.start for u in parsed],
        "control_guidance_end": [u.end for u in parsed],
        "guess_mode": 2 in modes,
    }
    infotext = {f"ControlNet {n}": u.summary for n, u in enumerate(parsed)}
    restores = [u.restore for u in parsed if u.restore is not None]
    # inpaint units' control images are tensors (masked pixels -1), not pictures: no map for them.
    maps = [u.image for u in parsed if u.save_detected_map and _is_picture(u.image)]
    net = nets[0]
    if len(parsed) == 1:
        kwargs.update({k: v[0] for k, v in kwargs.items() if isinstance(v, list)})
    else:
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        net = MultiControlNetModel(nets)
    return ControlNetInputs(net, kwargs, infotext, extras, restores, maps)


def _is_picture(image: Any) -> bool:
    from PIL import Image

    return isinstance(image, Image.Image)


def numpy_seed(seed: int, subseed: int, first_seed: int) -> int:
    """The extension's `set_numpy_seed`: seed + subseed, each -1 replaced by the job's first seed."""
    main = first_seed if seed == -1 else max(int(seed), 0)
    sub = first_seed if subseed == -1 else max(int(subseed), 0)
    return (main + sub) & 0xFFFFFFFF


def returned_maps(inputs: ControlNetInputs | None, override_settings: dict) -> list[Any]:
    """The detected maps the job's images end with, as the extension's postprocess appends them, unless
    the WebUI option `control_net_no_detectmap` is set."""
    if inputs is None or (override_settings or {}).get("control_net_no_detectmap"):
        return []
    return list(inputs.detected_maps)


@dataclass
class _Where:
    """What every unit of one job is prepared against."""

    models: ModelFiles
    width: int
    height: int
    init_image: Any
    init_mask: Any
    device: Any
    seed: int | None


def release_adapters(unet: Any) -> None:
    """Take a previous job's reference_only and IP-Adapter out of the shared UNet (a job without units calls it)."""
    _reference.release(unet)
    ip_adapter.release(unet)


def _reference_unit(unit: dict[str, Any], index: int, init_image: Any, width: int, height: int, unet: Any) -> Any:
    """reference_only / reference_adain(+attn): the unit image at the generation size; style fidelity =
    threshold_a (default 0.5), cubed on SDXL, 1 with "ControlNet is more important" and 0 with "My prompt is
    more important", as the extension."""
    if unet is None:
        raise UnsupportedFeature(f"{_module(unit)} units are not supported in this task")
    mode = images.resize_mode(unit.get("resize_mode", "Crop and Resize"), index)
    image = images.control_map(images.unit_image(unit, index, init_image), "none", unit, width, height, mode)
    raw = _number(unit, "threshold_a", -1.0, index)
    fidelity = 0.5 if raw < 0 else min(1.0, raw)  # -1: the API's "unset"
    if unet.config.get("addition_embed_type") == "text_time":
        fidelity = fidelity**3
    control = _control_mode(_mode_value(unit), index)
    fidelity = {1: 0.0, 2: 1.0}.get(control, fidelity)
    start, end = _number(unit, "guidance_start", 0.0, index), _number(unit, "guidance_end", 1.0, index)
    weight = _number(unit, "weight", 1.0, index)
    module = _module(unit)
    return _reference.ReferenceAttention(image.convert("RGB"), weight, start, end, fidelity, index, module)


def _adapter_residuals(unit: _Unit, unet: Any) -> Any:
    if unet is None:
        raise UnsupportedFeature("T2I-Adapter units are not supported in this task")
    return t2i_adapter.residuals(unit.model, unit.image, unet, (unit.weight, unit.start, unit.end, unit.mode))


def _module(unit: dict[str, Any]) -> str:
    return str(unit.get("module") or "none").strip().lower()


def _image_prompts(
    units: list[tuple[int, dict[str, Any]]], models: ModelFiles, unet: Any, init_image: Any
) -> list[Any]:
    if not units:
        if unet is not None:
            ip_adapter.release(unet)
        return []
    for index, unit in units:
        ip_adapter.check_module(_module(unit), index)
    if unet is None:
        raise UnsupportedFeature("IP-Adapter units are not supported in this task")
    rgbs = [(i, u, images.unit_image(u, i, init_image)) for i, u in units]
    return [ip_adapter.prepare(rgbs, models, unet)]


def _enabled(unit: Any, index: int) -> bool:
    if not isinstance(unit, dict):
        raise PayloadError(f"ControlNet unit {index} must be an object, got {type(unit).__name__}")
    return bool(unit.get("enabled", True))  # the extension's API treats a unit without `enabled` as on


def _canonical_module(unit: dict, index: int) -> str:
    """The unit's module by the preprocessors' registry, or one of the inpaint modules."""
    module = str(unit.get("module") or "none").strip().lower()
    if inpaint.handles(module):
        return module
    others = (*inpaint.MODULES, *_reference.MODULES, *ip_adapter.MODULES)
    return preprocessors.canonical(unit.get("module"), index, also=others)


def _parse(unit: dict, index: int, where: _Where) -> _Unit:
    module = _canonical_module(unit, index)
    input_mode = str(unit.get("input_mode") or "simple").lower()
    if input_mode != "simple":
        raise UnsupportedFeature(
            f"ControlNet unit {index} input_mode {unit.get('input_mode')!r} is not supported; "
            f"supported: simple (one image per unit)"
        )
    model = _resolve_model(unit.get("model"), index, where.models)
    mode = images.resize_mode(unit.get("resize_mode", "Crop and Resize"), index)
    restore = None
    if inpaint.handles(module):
        init = (where.init_image, where.init_mask)
        control, restore = inpaint.control_image(unit, index, module, init, where.width, where.height, mode)
    else:
        control = images.control_map(
            images.unit_image(unit, index, where.init_image),
            module,
            unit,
            where.width,
            where.height,
            mode,
            (where.models or {}).get(preprocessors.ANNOTATOR_TYPE, []),
            where.device,
            where.seed,
        )
    start, end = _number(unit, "guidance_start", 0.0, index), _number(unit, "guidance_end", 1.0, index)
    if not 0.0 <= start < end <= 1.0:
        raise PayloadError(
            f"ControlNet unit {index} guidance_start {start} and guidance_end {end} must satisfy 0 <= start < end <= 1"
        )
    parsed = _Unit(
        index=index,
        model=model,
        image=control,
        weight=_number(unit, "weight", 1.0, index),
        start=start,
        end=end,
        mode=_control_mode(_mode_value(unit), index),
        restore=restore,
        save_detected_map=unit.get("save_detected_map", True) is not False,
    )
    parsed.summary = _summary(parsed, unit, module, mode)
    if _colorfix.handles(module):
        variation, sharpness = preprocessors.thresholds(module, unit)
        sharp = sharpness if module == "tile_colorfix+sharp" else None
        parsed.colorfix = _colorfix.ColorFix(control.convert("RGB"), variation, sharp, parsed.weight)
    return parsed


def _summary(parsed: _Unit, unit: dict, module: str, resize: int) -> str:
    """The unit as the extension writes it into the infotext (`ControlNet 0: "Module: canny, ..."`)."""
    fields = {
        "Module": module,
        "Model": str(unit.get("model")),
        "Weight": parsed.weight,
        "Resize Mode": _RESIZE_NAMES[resize],
    }
    if module == "canny":
        fields.update(
            {
                "Processor Res": unit.get("processor_res", -1),
                "Threshold A": unit.get("threshold_a", -1),
                "Threshold B": unit.get("threshold_b", -1),
            }
        )
    fields.update(
        {
            "Guidance Start": parsed.start,
            "Guidance End": parsed.end,
            "Pixel Perfect": bool(unit.get("pixel_perfect", False)),
            "Control Mode": _MODE_NAMES[parsed.mode],
        }
    )
    return '"' + ", ".join(f"{key}: {value}" for key, value in fields.items()) + '"'


def _mode_value(unit: dict) -> Any:
    # Extension versions before control_mode sent `guessmode`/`guess_mode` (true = ControlNet is more important).
    if "control_mode" not in unit and (unit.get("guessmode") or unit.get("guess_mode")):
        return 2
    return unit.get("control_mode", 0)


def _control_mode(value: Any, index: int) -> int:
    if isinstance(value, int) and value in (0, 1, 2):
        return value
    if isinstance(value, str) and value.strip().lower() in CONTROL_MODES:
        return CONTROL_MODES[value.strip().lower()]
    valid = "'Balanced', 'My prompt is more important', 'ControlNet is more important' (or 0, 1, 2)"
    raise PayloadError(f"ControlNet unit {index} control_mode {value!r} is not valid; valid: {valid}")


def _cached(path: Path, device: Any, dtype: Any) -> Any:
    if not path.exists():
        raise ModelError(f"ControlNet file {path.name!r} not found")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device), str(dtype))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    net = load_controlnet(path, dtype).to(device)
    net.register_forward_hook(_prompt_priority_hook)
    _CACHE[key] = net
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return net


def _prompt_priority_hook(module: Any, args: Any, output: Any) -> Any:
    """ "My prompt is more important": shallow blocks get geometrically less control, the middle block full."""
    if not getattr(module, _PROMPT_PRIORITY, False):
        return output
    as_dataclass = hasattr(output, "mid_block_res_sample")  # return_dict=True gives a ControlNetOutput
    down, mid = (output.down_block_res_samples, output.mid_block_res_sample) if as_dataclass else output
    n = len(down) + 1
    down = tuple(sample * PROMPT_DECAY ** (n - 1 - i) for i, sample in enumerate(down))
    if as_dataclass:
        output.down_block_res_samples = down
        return output
    return down, mid
