"""Annotator networks: controlnet-aux's classes built here (never its downloading loaders), the weights read
from the user's `ControlNet-annotator` uploads under the extension's own file names, without unpickling."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from openesd.errors import ModelError

ANNOTATOR_TYPE = "ControlNet-annotator"
CACHE_SIZE = 3
_CACHE: OrderedDict[tuple, Any] = OrderedDict()  # loaded annotator networks, least recently used first


@dataclass(frozen=True)
class Annotator:
    """One weight file of the extension and how to build the network that reads it."""

    file: str
    build: Callable[[], Any]
    prefix: str = "module."  # DataParallel prefix some of the extension's files carry
    adapt: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None  # file keys -> the network's keys


def _pidinet() -> Any:
    from controlnet_aux.pidi.model import pidinet

    return pidinet()


def _hed() -> Any:
    from controlnet_aux.hed import ControlNetHED_Apache2

    return ControlNetHED_Apache2()


def _lineart() -> Any:
    from controlnet_aux.lineart import Generator

    return Generator(3, 1, 3)


def _lineart_anime() -> Any:
    import functools

    from controlnet_aux.lineart_anime import UnetGenerator
    from torch import nn

    norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    return UnetGenerator(3, 1, 8, 64, norm_layer=norm, use_dropout=False)


def _mlsd() -> Any:
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large

    return MobileV2_MLSD_Large()


def _midas() -> Any:
    from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel

    return DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)  # the extension's dpt_hybrid


def _normal_bae() -> Any:
    import types

    from controlnet_aux.normalbae.nets.NNET import NNET

    # The extension's arguments; the EfficientNet encoder comes from controlnet-aux's own copy, not the hub.
    args = types.SimpleNamespace(
        mode="client", architecture="BN", pretrained="scannet", sampling_ratio=0.4, importance_ratio=0.7
    )
    return NNET(args)


def _zoe() -> Any:
    from controlnet_aux.zoe.zoedepth.models.zoedepth.zoedepth_v1 import ZoeDepth
    from controlnet_aux.zoe.zoedepth.utils.config import get_config

    config = get_config("zoedepth", "infer")
    config["use_pretrained_midas"], config["pretrained_resource"] = False, None  # the upload gives every weight
    return ZoeDepth.build_from_config(config)


def _zoe_keys(net: Any, state: dict[str, Any]) -> dict[str, Any]:
    """ZoeD_M12_N.pt was saved with a timm that stored BEiT's relative position indices; today's timm derives
    them (non-persistent buffers), so those keys, and only those, are dropped."""
    known = set(net.state_dict())
    return {k: v for k, v in state.items() if k in known or not k.endswith("relative_position_index")}


def _leres() -> Any:
    from controlnet_aux.leres.leres.multi_depth_model_woauxi import RelDepthModel

    return RelDepthModel(backbone="resnext101")


def _body() -> Any:
    from controlnet_aux.open_pose.model import bodypose_model

    return bodypose_model()


def _hand() -> Any:
    from controlnet_aux.open_pose.model import handpose_model

    return handpose_model()


def _face() -> Any:
    from controlnet_aux.open_pose.face import FaceNet

    return FaceNet()


def _openpose_keys(net: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The CMU files name layers without the network's stage prefix (`conv1_1.weight` for `model0.conv1_1...`)."""
    from controlnet_aux.open_pose.util import transfer

    return dict(transfer(net, state))


PIDINET = Annotator("table5_pidinet.pth", _pidinet)
HED = Annotator("ControlNetHED.pth", _hed)
LINEART = Annotator("sk_model.pth", _lineart)
LINEART_COARSE = Annotator("sk_model2.pth", _lineart)
LINEART_ANIME = Annotator("netG.pth", _lineart_anime)
MLSD = Annotator("mlsd_large_512_fp32.pth", _mlsd)
MIDAS = Annotator("dpt_hybrid-midas-501f0c75.pt", _midas)
NORMAL_BAE = Annotator("scannet.pt", _normal_bae)
ZOE = Annotator("ZoeD_M12_N.pt", _zoe, adapt=_zoe_keys)
LERES = Annotator("res101.pth", _leres)
BODY = Annotator("body_pose_model.pth", _body, adapt=_openpose_keys)
HAND = Annotator("hand_pose_model.pth", _hand, adapt=_openpose_keys)
FACE = Annotator("facenet.pth", _face)


def check_files(specs: tuple[Annotator, ...], module: str, files: list[Path]) -> None:
    """Every file the module needs is among the job's uploads, else one error naming each missing one."""
    names = {Path(p).name for p in files if Path(p).exists()}
    missing = [spec.file for spec in specs if spec.file not in names]
    if missing:
        raise ModelError(
            f"ControlNet module {module!r} needs the annotator file{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}: upload each as a checkpoint of type {ANNOTATOR_TYPE!r} "
            f"and include it in the job (this job's {ANNOTATOR_TYPE} files: "
            f"{', '.join(Path(p).name for p in files) or 'none'})"
        )


def network(spec: Annotator, module: str, files: list[Path], device: Any) -> Any:
    """The annotator's network on `device`, loaded once per file version."""
    check_files((spec,), module, files)
    path = next(Path(p) for p in files if Path(p).name == spec.file)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    net = spec.build()
    state = _state_dict(path, spec.prefix)
    try:
        net.load_state_dict(spec.adapt(net, state) if spec.adapt else state)
    except (RuntimeError, KeyError) as exc:  # wrong architecture: say which file, not torch's key dump alone
        raise ModelError(f"annotator file {spec.file!r} does not match the {module!r} network: {exc}") from None
    net = net.float().eval().to(device)
    _CACHE[key] = net
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return net


def _state_dict(path: Path, prefix: str) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw: Any = load_file(str(path))
    else:
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickled objects beyond tensors are refused, never unpickled
            raise ModelError(f"annotator file {path.name!r} cannot be read as a tensor state dict: {exc}") from None
    # Training checkpoints wrap the weights: table5_pidinet.pth, scannet.pt and ZoeD_M12_N.pt, res101.pth.
    for wrapper in ("state_dict", "model", "depth_model"):
        if isinstance(raw, dict) and isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
    if not isinstance(raw, dict):
        raise ModelError(f"annotator file {path.name!r} holds no state dict")
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in raw.items()}
