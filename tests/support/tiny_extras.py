"""Tiny random-weight upscaler and rembg models in the file layouts users upload, plus test images.

ESRGAN: the Real-ESRGAN (basicsr `RRDBNet`) key layout, as in `RealESRGAN_x4plus.pth` (wrapped in
`params_ema`) and `RealESRGAN_x2plus.pth` (pixel-unshuffle, 12 input channels), or the original
ESRGAN layout (`model.0.*`, `model.1.sub.N.RDBk.convj.0.*`) of `ESRGAN_4x.pth` / `4x-UltraSharp`.
rembg: an ONNX graph with U²-Net's I/O contract (`input.1` 1×3×320×320 → 1×1×320×320 map).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

NUM_FEAT = 8  # real models: 64
NUM_GROW = 32  # spandrel's RRDB fixes the growth channels at 32, as the real models have
NUM_BLOCKS = 1  # real models: 23


def esrgan_state_dict(scale: int = 4, layout: str = "real-esrgan", seed: int = 0) -> dict:
    """A tiny RRDBNet state dict (`scale` 2 or 4) in the `real-esrgan` or `esrgan` key layout."""
    import torch

    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale}")
    generator = torch.Generator().manual_seed(seed)
    # basicsr's x2 model sees the image pixel-unshuffled (3 → 12 channels) and upsamples 4×.
    in_channels = 3 * 4 if scale == 2 else 3
    shapes = _real_esrgan_shapes(in_channels)
    state = {key: _weight(shape, generator) for key, shape in shapes.items()}
    _add_pass_through(state, unshuffled=scale == 2)
    if layout == "esrgan":
        return _to_original_layout(state)
    if layout != "real-esrgan":
        raise ValueError(f"layout must be 'real-esrgan' or 'esrgan', got {layout!r}")
    return state


def write_tiny_esrgan(path: Path, scale: int = 4, layout: str = "real-esrgan", seed: int = 0) -> Path:
    """Save a tiny ESRGAN as `.pth` (like the Real-ESRGAN releases: under `params_ema` for the
    real-esrgan layout) or `.safetensors` (flat), chosen by the suffix of `path`."""
    import torch

    state = esrgan_state_dict(scale, layout, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    elif layout == "real-esrgan":
        torch.save({"params_ema": state}, path)
    else:
        torch.save(state, path)
    return path


def write_tiny_u2net_onnx(path: Path) -> Path:
    """A one-conv ONNX model with U²-Net's input and output names and shapes.

    The map is sigmoid(4·(red − blue)) over a 3×3 neighbourhood: red areas come out foreground,
    blue ones background, so the mask visibly depends on the image.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((1, 3, 3, 3), dtype=np.float32)
    weight[0, 0], weight[0, 2] = 4.0 / 9, -4.0 / 9
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input.1", "w", "b"], ["logits"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["logits"], ["1959"]),
        ],
        "tiny_u2net",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("1959", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=[
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "b"),
        ],
    )
    # Opset and IR version that the pinned onnxruntime reads, whatever `onnx` defaults to.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def sample_image(width: int = 48, height: int = 32) -> Image.Image:
    """Left half red, right half blue, with a horizontal gradient so resamplers differ."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    pixels = np.zeros((height, width, 3), dtype=np.float32)
    left = np.arange(width)[None, :].repeat(height, axis=0) < width // 2
    pixels[..., 0] = np.where(left, 200 + x / 8, x / 8)
    pixels[..., 1] = x / 2
    pixels[..., 2] = np.where(left, x / 8, 200 + x / 8)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="RGB")


def to_base64(image: Image.Image, format: str = "JPEG") -> str:
    """Bare base64, as real WebUI payloads send images (JPEG by default, like ESD's samples)."""
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _real_esrgan_shapes(in_channels: int) -> dict[str, tuple[int, ...]]:
    def conv(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.weight": (cout, cin, 3, 3), f"{prefix}.bias": (cout,)}

    shapes = conv("conv_first", in_channels, NUM_FEAT)
    for block in range(NUM_BLOCKS):
        for rdb in (1, 2, 3):
            for j in range(1, 6):
                cin = NUM_FEAT + (j - 1) * NUM_GROW
                cout = NUM_FEAT if j == 5 else NUM_GROW
                shapes |= conv(f"body.{block}.rdb{rdb}.conv{j}", cin, cout)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes |= conv(name, NUM_FEAT, NUM_FEAT)
    return shapes | conv("conv_last", NUM_FEAT, 3)


def _weight(shape: tuple[int, ...], generator) -> object:
    import torch

    if len(shape) == 1:
        return torch.randn(shape, generator=generator) * 0.01  # biases
    # Small, fan-in-scaled weights keep the random texture from drowning the picture.
    return torch.randn(shape, generator=generator) * (0.1 / int(np.prod(shape[1:])) ** 0.5)


def _add_pass_through(state: dict, unshuffled: bool) -> None:
    """Add an identity path (first conv → upsampling convs → last conv) to the random weights.

    The output is then the input, enlarged, plus random texture from the RRDB trunk: it looks
    like the picture, as a trained upscaler's output does, so tests can tell what it did.
    """
    for channel in range(3):
        # Unshuffled input holds channel c's 2×2 block in channels 4c..4c+3.
        source = channel * 4 if unshuffled else channel
        state["conv_first.weight"][channel, source, 1, 1] += 1.0
        state["conv_last.weight"][channel, channel, 1, 1] += 1.0
    for name in ("conv_up1", "conv_up2", "conv_hr"):
        for channel in range(NUM_FEAT):
            state[f"{name}.weight"][channel, channel, 1, 1] += 1.0


def _to_original_layout(state: dict) -> dict:
    """Real-ESRGAN keys renamed to the original ESRGAN `model.N` sequence (x4: no unshuffle)."""
    renamed = {}
    for key, value in state.items():
        name, kind = key.rsplit(".", 1)
        if name.startswith("body."):
            _, block, rdb, conv = name.split(".")
            renamed[f"model.1.sub.{block}.RDB{rdb[3:]}.conv{conv[4:]}.0.{kind}"] = value
            continue
        target = {
            "conv_first": "model.0",
            "conv_body": f"model.1.sub.{NUM_BLOCKS}",
            "conv_up1": "model.3",
            "conv_up2": "model.6",
            "conv_hr": "model.8",
            "conv_last": "model.10",
        }[name]
        renamed[f"{target}.{kind}"] = value
    return renamed
