"""The weight-free preprocessors, each the operation sd-webui-controlnet's processor.py performs (our own code)."""

from __future__ import annotations

from typing import Any, Callable


def hwc3(img: Any) -> Any:
    """Grey -> three equal channels; RGBA -> RGB over white, as the extension's HWC3."""
    import numpy as np

    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        return np.concatenate([img] * 3, axis=2)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        return (img[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)
    return img


def pad_resize(img: Any, resolution: int) -> tuple[Any, Callable[[Any], Any]]:
    """The shorter side scaled to `resolution` (cubic up, area down), padded by edge to a multiple of 64.

    Returns the padded image and the function that crops a same-sized map back to the unpadded size.
    """
    import cv2
    import numpy as np

    img = hwc3(img)
    h, w = img.shape[:2]
    k = float(resolution) / float(min(h, w))
    th, tw = int(np.round(h * k)), int(np.round(w * k))
    img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    padded = np.pad(img, [[0, -th % 64], [0, -tw % 64], [0, 0]], mode="edge")
    return np.ascontiguousarray(padded), lambda x: np.ascontiguousarray(x[:th, :tw])


def resize_to_64(img: Any, resolution: int) -> Any:
    """The ControlNet 1.0 `resize_image`: shorter side to `resolution`, both sides rounded to 64 (Lanczos up)."""
    import cv2
    import numpy as np

    h, w = img.shape[:2]
    k = float(resolution) / min(h, w)
    th, tw = int(np.round(h * k / 64.0)) * 64, int(np.round(w * k / 64.0)) * 64
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)


def none(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    return hwc3(img)


def invert(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    return 255 - hwc3(img)


def canny(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    import cv2

    padded, unpad = pad_resize(img, res)
    return unpad(cv2.Canny(padded, a, b))


def scribble_xdog(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """Difference of Gaussians (sigma 0.5 and 5) on each channel, the darkest kept, thresholded at `a`."""
    import cv2
    import numpy as np

    padded, unpad = pad_resize(img, res)
    fine = cv2.GaussianBlur(padded.astype(np.float32), (0, 0), 0.5)
    coarse = cv2.GaussianBlur(padded.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(coarse - fine, axis=2)).clip(0, 255).astype(np.uint8)
    out = np.zeros_like(padded)
    out[2 * (255 - dog) > a] = 255
    return unpad(out)


def threshold(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """White where every channel is above `a`."""
    import numpy as np

    padded, unpad = pad_resize(img, res)
    out = np.zeros_like(padded)
    out[np.min(padded, axis=2) > a] = 255
    return unpad(out)


def binary(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """ControlNet 1.0's `binary`: grey, inverted threshold at `a` (0 or 255: Otsu's), on the 1.0 resize."""
    import cv2

    grey = cv2.cvtColor(resize_to_64(hwc3(img), res), cv2.COLOR_RGB2GRAY)
    if a in (0, 255):
        _, out = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    else:
        _, out = cv2.threshold(grey, a, 255, cv2.THRESH_BINARY_INV)
    return out


def blur_gaussian(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    import cv2

    padded, unpad = pad_resize(img, res)
    return cv2.GaussianBlur(unpad(padded), (0, 0), float(a))


def tile_resample(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """Downsampled by the rate `a` (area); below 1.1 the image is used as it is."""
    import cv2

    img = hwc3(img)
    if a < 1.1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (int(float(w) / a), int(float(h) / a)), interpolation=cv2.INTER_AREA)


def lineart_standard(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """Dark detail against a sigma-6 blur, scaled so the median line reaches 127."""
    import cv2
    import numpy as np

    padded, unpad = pad_resize(img, res)
    x = padded.astype(np.float32)
    intensity = np.min(cv2.GaussianBlur(x, (0, 0), 6.0) - x, axis=2).clip(0, 255)
    lines = intensity[intensity > 8]
    intensity /= max(16.0, float(np.median(lines)) if lines.size else 0.0)  # no line at all: the median is nan
    return unpad((intensity * 127).clip(0, 255).astype(np.uint8))


def color(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """T2I-Adapter colour grid: a (res/64)-square cubic thumbnail blown up to res x res, nearest."""
    import cv2

    small = cv2.resize(hwc3(img), (res // 64, res // 64), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (res, res), interpolation=cv2.INTER_NEAREST)


def recolor_luminance(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """L of Lab, gamma `a`; the extension converts the RGB image as if it were BGR, and so does this."""
    import cv2

    return _gamma_grey(cv2.cvtColor(hwc3(img), cv2.COLOR_BGR2LAB)[:, :, 0], a)


def recolor_intensity(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """V of HSV (the channel maximum), gamma `a`."""
    import cv2

    return _gamma_grey(cv2.cvtColor(hwc3(img), cv2.COLOR_BGR2HSV)[:, :, 2], a)


def _gamma_grey(channel: Any, gamma: float) -> Any:
    import cv2
    import numpy as np

    out = ((channel.astype(np.float32) / 255.0) ** gamma * 255.0).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def shuffle(img: Any, res: int, a: float, b: float, rng: Any) -> Any:
    """Content shuffle: the image remapped through two smooth random flow fields (scale 256)."""
    import cv2
    import numpy as np

    padded, unpad = pad_resize(img, res)
    image = unpad(padded)
    h, w = image.shape[:2]
    x = _noise_disk(rng, h, w, 256) * float(w - 1)
    y = _noise_disk(rng, h, w, 256) * float(h - 1)
    flow = np.concatenate([x, y], axis=2).astype(np.float32)
    return cv2.remap(image, flow, None, cv2.INTER_LINEAR)


def _noise_disk(rng: Any, h: int, w: int, f: int) -> Any:
    import cv2

    noise = rng.uniform(low=0, high=1, size=((h // f) + 2, (w // f) + 2, 1))
    noise = cv2.resize(noise, (w + 2 * f, h + 2 * f), interpolation=cv2.INTER_CUBIC)[f : f + h, f : f + w]
    noise -= noise.min()
    noise /= noise.max()
    return noise[:, :, None]


def scribble(edge: Any) -> Any:
    """The extension's scribble from a soft edge map: thin (NMS at 127, sigma 3), blur 3, anything > 4 is a line."""
    import cv2
    import numpy as np

    blurred = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), 3.0)
    peaks = np.zeros_like(blurred)
    for kernel in _NMS_KERNELS():
        np.putmask(peaks, cv2.dilate(blurred, kernel=kernel) == blurred, blurred)
    thin = np.where(peaks > 127, 255, 0).astype(np.uint8)
    out = cv2.GaussianBlur(thin, (0, 0), 3.0)
    return np.where(out > 4, 255, 0).astype(np.uint8)


def _NMS_KERNELS() -> list[Any]:  # noqa: N802 - four line directions: horizontal, vertical, two diagonals
    import numpy as np

    return [
        np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=np.uint8),
        np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.uint8),
        np.eye(3, dtype=np.uint8),
        np.fliplr(np.eye(3, dtype=np.uint8)).copy(),
    ]
