"""The annotator preprocessors as the extension runs them: its resize-with-pad at the processor resolution,
the network on the padded image, the extension's own normalisation and drawing, then the crop.

Each takes (image, resolution, threshold_a, threshold_b, device, networks) and returns a uint8 map."""

from __future__ import annotations

from typing import Any, Callable

from openesd.generation.adapters.preprocessors._basic import pad_resize, scribble


def _tensor(img: Any, device: Any, scale: float = 255.0, shift: float = 0.0) -> Any:
    import torch

    x = torch.from_numpy(img.copy()).float().to(device) / scale - shift
    return x.permute(2, 0, 1)[None]


def pidinet(
    img: Any, res: int, a: float, b: float, device: Any, nets: list[Any], safe: bool = False, sketch: bool = False
) -> Any:
    """PiDiNet's last side output on the BGR image; `safe` quantises it to 3 levels, `sketch` binarises at 0.5."""
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    with torch.no_grad():
        edge = nets[0](_tensor(padded[:, :, ::-1], device))[-1].float().cpu().numpy()[0, 0]
    if sketch:
        edge = (edge > 0.5).astype(np.float32)
    if safe:
        edge = _safe_step(edge)
    return unpad((edge * 255.0).clip(0, 255).astype(np.uint8))


def hed(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any], safe: bool = False) -> Any:
    """ControlNet 1.1's HED: the five side projections resized to the image, averaged, sigmoid."""
    import cv2
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    h, w = padded.shape[:2]
    with torch.no_grad():
        sides = nets[0](_tensor(padded, device, scale=1.0))
    sides = [cv2.resize(s.float().cpu().numpy()[0, 0], (w, h), interpolation=cv2.INTER_LINEAR) for s in sides]
    edge = 1 / (1 + np.exp(-np.mean(np.stack(sides, axis=2), axis=2).astype(np.float64)))
    if safe:
        edge = _safe_step(edge)
    return unpad((edge * 255.0).clip(0, 255).astype(np.uint8))


def lineart(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any]) -> Any:
    """Informative-drawings line art, inverted to white lines on black as the extension does."""
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    with torch.no_grad():
        line = nets[0](_tensor(padded, device))[0][0].float().cpu().numpy()
    return unpad(255 - (line * 255.0).clip(0, 255).astype(np.uint8))


def lineart_anime(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any]) -> Any:
    """The anime U-Net runs on the image stretched to multiples of 256 ([-1, 1] input), then back, inverted."""
    import cv2
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    h, w = padded.shape[:2]
    hn, wn = 256 * int(np.ceil(h / 256.0)), 256 * int(np.ceil(w / 256.0))
    feed = cv2.resize(padded, (wn, hn), interpolation=cv2.INTER_CUBIC)
    with torch.no_grad():
        line = (nets[0](_tensor(feed, device, scale=127.5, shift=1.0))[0, 0] * 127.5 + 127.5).float().cpu().numpy()
    line = cv2.resize(line, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    return unpad(255 - line)


def mlsd(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any]) -> Any:
    """M-LSD straight lines (score threshold `a`, distance threshold `b`) drawn 1 px white on black."""
    import cv2
    import numpy as np
    import torch
    from controlnet_aux.mlsd.utils import pred_lines

    padded, unpad = pad_resize(img, res)
    out = np.zeros_like(padded)
    try:
        with torch.no_grad():
            lines = pred_lines(padded, nets[0], [padded.shape[0], padded.shape[1]], a, b)
    except IndexError:  # no segment passes the thresholds: pred_lines indexes an empty array; the map stays black
        lines = []
    for line in lines:
        x0, y0, x1, y1 = (int(v) for v in line)
        cv2.line(out, (x0, y0), (x1, y1), [255, 255, 255], 1)
    return unpad(out[:, :, 0])


def midas(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any], normal: bool = False) -> Any:
    """MiDaS (DPT hybrid) on the image in [-1, 1]: depth scaled to 0-255, or with `normal` the extension's
    normal map from the depth's Sobel gradients, flat where the depth is below `a` (background threshold)."""
    import cv2
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    with torch.no_grad():
        depth = nets[0](_tensor(padded, device, scale=127.5, shift=1.0))[0].float().cpu().numpy()
    scaled = depth - depth.min()
    scaled /= scaled.max() if scaled.max() > 0 else 1.0  # a constant depth stays 0 instead of nan
    if not normal:
        return unpad((scaled * 255.0).clip(0, 255).astype(np.uint8))
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    x[scaled < a], y[scaled < a] = 0, 0
    vectors = np.stack([x, y, np.full_like(x, np.pi * 2.0)], axis=2)
    vectors /= np.sum(vectors**2.0, axis=2, keepdims=True) ** 0.5
    return unpad((vectors * 127.5 + 127.5).clip(0, 255).astype(np.uint8))


def zoe(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any]) -> Any:
    """ZoeDepth (metric depth) on the image in [0, 1], near = white: the 2nd..85th percentile stretched, inverted."""
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    with torch.no_grad():
        depth = nets[0].infer(_tensor(padded, device))[0, 0].float().cpu().numpy()
    low, high = np.percentile(depth, 2), np.percentile(depth, 85)
    depth = 1.0 - (depth - low) / (high - low if high > low else 1.0)  # a flat depth stays finite
    return unpad((depth * 255.0).clip(0, 255).astype(np.uint8))


def leres(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any]) -> Any:
    """LeReS relative depth, near = white; `a` % removes the nearest, `b` % the background (0: keep all)."""
    import cv2
    import numpy as np
    from controlnet_aux.leres.leres.depthmap import estimateleres

    padded, unpad = pad_resize(img, res)
    depth = estimateleres(padded, nets[0], padded.shape[1], padded.shape[0])
    span = depth.max() - depth.min()
    # The extension goes through a 16-bit image before 8 bits; the same two roundings keep its values.
    wide = 65535 * (depth - depth.min()) / span if span > np.finfo("float").eps else np.zeros(depth.shape)
    out = cv2.convertScaleAbs(wide.astype("uint16"), alpha=255.0 / 65535.0)
    if a != 0:
        out = cv2.threshold(out, a / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    out = cv2.bitwise_not(out)
    if b != 0:
        out = cv2.threshold(out, b / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    return unpad(out)


def normal_bae(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any]) -> Any:
    """Bae et al.'s surface normals (ImageNet-normalised input), mapped from [-1, 1] to 0-255."""
    import numpy as np
    import torch

    padded, unpad = pad_resize(img, res)
    x = _tensor(padded, device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    with torch.no_grad():
        normal = nets[0]((x - mean) / std)[0][-1][:, :3]
    normal = ((normal + 1) * 0.5).clip(0, 1)[0].permute(1, 2, 0).float().cpu().numpy()
    return unpad((normal * 255.0).clip(0, 255).astype(np.uint8))


def openpose(img: Any, res: int, a: float, b: float, device: Any, nets: list[Any], parts: str = "body") -> Any:
    """OpenPose keypoints drawn as the extension draws them; `parts` names what is detected and drawn
    (body, body+hand, body+face, face, body+hand+face); the networks come body, then hand, then face."""
    from controlnet_aux.open_pose import OpenposeDetector, draw_poses
    from controlnet_aux.open_pose.body import Body
    from controlnet_aux.open_pose.face import Face, params
    from controlnet_aux.open_pose.hand import Hand

    wanted = set(parts.split("+"))
    found = iter(nets[1:])
    body = _holding(Body, nets[0])
    hand = _holding(Hand, next(found)) if "hand" in wanted else None
    face = _holding(Face, next(found)) if "face" in wanted else None
    if face is not None:  # controlnet-aux's Face defaults, which its loader would set
        face.inference_size, face.sigma = params["inference_img_size"], params["gaussian_sigma"]
        face.threshold = params["heatmap_peak_thresh"]
    padded, unpad = pad_resize(img, res)
    h, w = padded.shape[:2]
    poses = OpenposeDetector(body, hand, face).detect_poses(padded, "hand" in wanted, "face" in wanted)
    canvas = draw_poses(poses, h, w, draw_body="body" in wanted, draw_hand="hand" in wanted, draw_face="face" in wanted)
    return unpad(canvas)


def _holding(cls: Any, net: Any) -> Any:
    """controlnet-aux's estimator object around a network loaded here (its own loader would torch.load a path)."""
    estimator = cls.__new__(cls)
    estimator.model = net
    return estimator


def _safe_step(x: Any, step: int = 2) -> Any:
    import numpy as np

    return (x.astype(np.float32) * float(step + 1)).astype(np.int32).astype(np.float32) / float(step)


def scribbled(run: Callable[..., Any]) -> Callable[..., Any]:
    """The extension's scribble_* modules: the soft edge map, thinned and thickened into scribble lines."""
    return lambda *args, **kwargs: scribble(run(*args, **kwargs))
