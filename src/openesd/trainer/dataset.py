"""kohya dataset folders: `<repeats>_<concept>/` sub-folders of images with same-stem caption files.

Validation reads every image and collects every problem before failing, so one message tells the
user all that must be fixed. Bucketing follows kohya-ss: buckets of about resolution² area whose
sides are multiples of bucket_reso_steps; each image goes to the bucket nearest its aspect ratio.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from openesd.trainer.errors import TrainingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_FOLDER = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True)
class ImageItem:
    """One training image: its caption, how often an epoch repeats it, its size and its bucket."""

    path: Path
    caption: str
    repeats: int
    size: tuple[int, int]  # (width, height) of the file
    bucket: tuple[int, int] = (0, 0)  # (width, height) it is resized and cropped to


@dataclass
class Dataset:
    items: list[ImageItem]
    warnings: list[str]

    @property
    def image_count(self) -> int:
        """Images seen per epoch, repeats included (kohya's "num train images * repeats")."""
        return sum(item.repeats for item in self.items)


def scan(root: Path, caption_extension: str = ".txt", decode: bool = True) -> Dataset:
    """Every image under `root`'s `<repeats>_<concept>` folders; TrainingError listing each problem.

    An image lacking a caption file is captioned with its concept name, as kohya does with class tokens
    (ESD's client uploads such datasets); `warnings` says so per folder. `decode=False` reads only the
    image headers, in pure Python: the API checks datasets so, without the worker's Pillow.
    """
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"dataset folder {str(root)!r} does not exist")
    problems: list[str] = []
    items: list[ImageItem] = []
    warnings: list[str] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if stray:
        problems.append(f"images must be inside <repeats>_<concept> folders, found at the top: {', '.join(stray)}")
    for folder in folders:
        items.extend(_scan_folder(folder, caption_extension, decode, problems, warnings))
    if not folders and not stray:
        problems.append("no <repeats>_<concept> folders (e.g. 10_cat) found")
    if problems:
        listing = "; ".join(problems)
        raise TrainingError(f"dataset {root.name!r} has {len(problems)} problem(s): {listing}")
    return Dataset(items=items, warnings=warnings)


def _scan_folder(
    folder: Path, extension: str, decode: bool, problems: list[str], warnings: list[str]
) -> list[ImageItem]:
    match = _FOLDER.match(folder.name)
    if not match:
        problems.append(f"folder {folder.name!r} is not named <repeats>_<concept> (e.g. 10_cat)")
        return []
    repeats, concept = int(match.group(1)), match.group(2)
    if repeats < 1:
        problems.append(f"folder {folder.name!r} repeats its images 0 times")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        problems.append(f"folder {folder.name!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
    items, missing = [], 0
    for image in images:
        size = _image_size(image, problems) if decode else _header_size(image, problems)
        caption_file = image.with_suffix(extension)
        if caption_file.is_file():
            caption = caption_file.read_text(encoding="utf-8", errors="replace").strip()
        else:
            caption, missing = concept, missing + 1
        if size:
            items.append(ImageItem(path=image, caption=caption, repeats=repeats, size=size))
    if missing:
        warnings.append(
            f"{missing} image(s) in {folder.name} have no {extension} caption file: they are trained "
            f"with their folder's concept name `{concept}`"
        )
    return items


def _header_size(path: Path, problems: list[str]) -> tuple[int, int] | None:
    from openesd.trainer._image_header import NotAnImage, read_header

    try:
        header = read_header(path)
    except (NotAnImage, OSError) as exc:
        problems.append(f"{path.parent.name}/{path.name} cannot be read as an image ({exc})")
        return None
    return header.width, header.height


def _image_size(path: Path, problems: list[str]) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # verify() misses truncated files; decoding the pixels does not
            return image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        problems.append(f"{path.parent.name}/{path.name} cannot be read as an image ({exc.__class__.__name__})")
        return None


def bucket_resolutions(resolution: tuple[int, int], min_reso: int, max_reso: int, step: int) -> list[tuple[int, int]]:
    """kohya's make_bucket_resolutions: every (w, h) with w*h <= resolution area, sides multiples of step."""
    area = resolution[0] * resolution[1]
    buckets = {(resolution[0] // step * step, resolution[1] // step * step)}
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, (area // width) // step * step)
        if height >= min_reso:
            buckets.add((width, height))
            buckets.add((height, width))
        width += step
    return sorted(buckets)


def assign_buckets(dataset: Dataset, resolution: tuple[int, int], buckets: list[tuple[int, int]] | None) -> Dataset:
    """Each image to the bucket nearest its aspect ratio; without bucketing everything to `resolution`."""
    items = []
    for item in dataset.items:
        bucket = resolution if not buckets else _nearest(item.size, buckets)
        items.append(ImageItem(item.path, item.caption, item.repeats, item.size, bucket))
    return Dataset(items=items, warnings=dataset.warnings)


def _nearest(size: tuple[int, int], buckets: list[tuple[int, int]]) -> tuple[int, int]:
    aspect = size[0] / size[1]
    return min(buckets, key=lambda b: (abs(b[0] / b[1] - aspect), -b[0] * b[1]))


def epoch_batches(dataset: Dataset, batch_size: int, rng: random.Random) -> list[list[ImageItem]]:
    """One epoch: each image `repeats` times, shuffled within its bucket, batched per bucket, batches shuffled."""
    by_bucket: dict[tuple[int, int], list[ImageItem]] = {}
    for item in dataset.items:
        by_bucket.setdefault(item.bucket, []).extend([item] * item.repeats)
    batches = []
    for bucket in sorted(by_bucket):
        members = by_bucket[bucket]
        rng.shuffle(members)
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    rng.shuffle(batches)
    return batches


def batches_per_epoch(dataset: Dataset, batch_size: int) -> int:
    counts: dict[tuple[int, int], int] = {}
    for item in dataset.items:
        counts[item.bucket] = counts.get(item.bucket, 0) + item.repeats
    return sum(-(-n // batch_size) for n in counts.values())


def shuffle_caption(caption: str, keep_tokens: int, rng: random.Random) -> str:
    """kohya's shuffle_caption: comma-separated tags shuffled, the first keep_tokens left in place."""
    tags = [t.strip() for t in caption.split(",")]
    head, tail = tags[:keep_tokens], tags[keep_tokens:]
    rng.shuffle(tail)
    return ", ".join(head + tail)


def load_pixels(item: ImageItem) -> tuple[object, tuple[int, int]]:
    """The image resized to cover its bucket, centre-cropped: (C,H,W) float32 array in [-1, 1], crop (top, left)."""
    import numpy as np
    from PIL import Image

    width, height = item.bucket
    with Image.open(item.path) as image:
        image = image.convert("RGB")
        scale = max(width / image.width, height / image.height)
        resized = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        image = image.resize(resized, Image.Resampling.LANCZOS)
        top, left = (resized[1] - height) // 2, (resized[0] - width) // 2
        image = image.crop((left, top, left + width, top + height))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return array.transpose(2, 0, 1).copy(), (top, left)
