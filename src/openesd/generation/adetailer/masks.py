"""ADetailer's mask building (its `pred_preprocessing`): filter by area ratio, keep the top k, sort as the
`ad_bbox_sortby` setting asks, then offset, dilate/erode, drop empty masks and merge/invert."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
from PIL import Image, ImageChops

from openesd.generation.adetailer.args import DetailerTab
from openesd.generation.adetailer.detect import Detection


def build_masks(
    found: list[Detection], tab: DetailerTab, size: tuple[int, int], sort_by: str = "None"
) -> list[Image.Image]:
    """The inpaint masks of one tab for one image, in the order the passes run."""
    kept = filter_by_ratio(found, tab["ad_mask_min_ratio"], tab["ad_mask_max_ratio"], size)
    kept = top_k(kept, tab["ad_mask_k"], tab["ad_mask_filter_method"])
    kept = sort_detections(kept, sort_by, size)
    masks = [d.mask for d in kept]
    if tab["ad_x_offset"] or tab["ad_y_offset"]:
        masks = [ImageChops.offset(m, tab["ad_x_offset"], -tab["ad_y_offset"]) for m in masks]  # y points up
    if tab["ad_dilate_erode"]:
        masks = [dilate_erode(m, tab["ad_dilate_erode"]) for m in masks]
        masks = [m for m in masks if m.getbbox() is not None]
    return merge_invert(masks, tab["ad_mask_merge_invert"])


def area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def filter_by_ratio(found: list[Detection], low: float, high: float, size: tuple[int, int]) -> list[Detection]:
    whole = size[0] * size[1]
    return [d for d in found if low <= area(d.box) / whole <= high]


def top_k(found: list[Detection], k: int, method: str) -> list[Detection]:
    """The k largest (or most confident), largest first; 0 keeps all in detection order."""
    if not found or k == 0:
        return found
    keys = [area(d.box) for d in found] if method == "Area" else [d.confidence for d in found]
    order = np.argsort(keys)[-k:][::-1]  # numpy's own argsort, so ties fall as the extension's do
    return [found[i] for i in order]


def sort_detections(found: list[Detection], sort_by: str, size: tuple[int, int]) -> list[Detection]:
    if sort_by == "None" or len(found) <= 1:
        return found
    if sort_by == "Position (left to right)":
        return sorted(found, key=lambda d: d.box[0])
    if sort_by == "Position (center to edge)":
        centre = (size[0] / 2, size[1] / 2)
        return sorted(found, key=lambda d: math.dist(centre, ((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2)))
    return sorted(found, key=lambda d: -area(d.box))


def dilate_erode(mask: Image.Image, value: int) -> Image.Image:
    """Dilate (value > 0) or erode (< 0) with a value x value square, as OpenCV's MORPH_RECT kernel."""
    import cv2

    # A kernel past twice the image covers it from every pixel: larger ones give the same mask.
    size = min(abs(value), 2 * max(mask.size) + 2)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    array = np.asarray(mask)
    out = cv2.dilate(array, kernel, iterations=1) if value > 0 else cv2.erode(array, kernel, iterations=1)
    return Image.fromarray(out)


def merge_invert(masks: list[Image.Image], mode: str) -> list[Image.Image]:
    if mode == "None" or not masks:
        return masks
    merged = Image.fromarray(reduce(np.bitwise_or, [np.asarray(m) for m in masks]))
    return [merged] if mode == "Merge" else [ImageChops.invert(merged)]
