"""kohya dataset folders: repeats, captions, bucketing, and one message listing every problem."""

from __future__ import annotations

import random

import pytest

from openesd.trainer import TrainingError
from openesd.trainer import dataset as ds
from tests.training.conftest import make_dataset, write_image


def test_repeats_and_captions_come_from_the_folders(tmp_path):
    root = make_dataset(
        tmp_path, {"3_cat": [("a", (64, 64), "sks cat"), ("b", (64, 64), None)], "1_dog": [("c", (64, 64), "a dog")]}
    )
    dataset = ds.scan(root)
    captions = {item.path.name: (item.caption, item.repeats) for item in dataset.items}
    assert captions == {"a.png": ("sks cat", 3), "b.png": ("cat", 3), "c.png": ("a dog", 1)}
    assert dataset.image_count == 7
    assert dataset.warnings == [
        "1 image(s) in 3_cat have no .txt caption file: they are trained with their folder's concept name `cat`"
    ]


def test_esd_client_datasets_without_captions_train_with_the_concept_name(tmp_path):
    """ESD's client uploads bare images into `10_technic/`; kohya (and we) caption them `technic`."""
    root = make_dataset(tmp_path, {"10_technic": [("a", (64, 48), None), ("b", (48, 64), None), ("c", (64, 64), None)]})
    for decode in (True, False):  # the trainer decodes; the API reads headers only
        dataset = ds.scan(root, decode=decode)
        assert sorted((i.path.name, i.caption, i.repeats, i.size) for i in dataset.items) == [
            ("a.png", "technic", 10, (64, 48)),
            ("b.png", "technic", 10, (48, 64)),
            ("c.png", "technic", 10, (64, 64)),
        ]
        assert dataset.warnings == [
            "3 image(s) in 10_technic have no .txt caption file: they are trained with "
            "their folder's concept name `technic`"
        ]
    # What the text encoder is fed: the batch captions of an epoch are the concept name.
    batches = ds.epoch_batches(ds.assign_buckets(ds.scan(root), (64, 64), None), 4, random.Random(0))
    assert {item.caption for batch in batches for item in batch} == {"technic"}


def test_caption_extension_is_honoured(tmp_path):
    root = make_dataset(tmp_path, {"1_cat": [("a", (64, 64), None)]})
    (root / "1_cat" / "a.caption").write_text("from the caption file")
    assert ds.scan(root, ".caption").items[0].caption == "from the caption file"


def test_a_bad_dataset_lists_every_problem(tmp_path):
    root = make_dataset(tmp_path, {"2_cat": [("a", (64, 64), "ok"), ("b", (64, 64), None)], "5_empty": []})
    (root / "5_empty").mkdir()
    (root / "2_cat" / "broken.png").write_bytes(b"not a png at all")
    (root / "2_cat" / "broken.txt").write_text("caption")
    (root / "cats").mkdir()
    for decode in (True, False):
        with pytest.raises(TrainingError) as info:
            ds.scan(root, decode=decode)
        message = info.value.message
        assert message.startswith(f"dataset {root.name!r} has 3 problem(s): ")
        for problem in (
            "2_cat/broken.png cannot be read as an image",
            "folder '5_empty' has no images",
            "folder 'cats' is not named <repeats>_<concept>",
        ):
            assert problem in message


def test_a_missing_folder_and_stray_images_are_reported(tmp_path):
    with pytest.raises(TrainingError, match="does not exist"):
        ds.scan(tmp_path / "nope")
    write_image(tmp_path / "top.png", (64, 64), seed=1)
    with pytest.raises(TrainingError, match="found at the top: top.png"):
        ds.scan(tmp_path)


def test_buckets_follow_kohya_and_images_go_to_the_nearest_aspect(tmp_path):
    buckets = ds.bucket_resolutions((512, 512), 256, 1024, 64)
    assert (512, 512) in buckets and (768, 320) in buckets and (320, 768) in buckets
    assert all(w % 64 == 0 and h % 64 == 0 and w * h <= 512 * 512 for w, h in buckets)
    root = make_dataset(
        tmp_path, {"1_x": [("wide", (300, 150), "w"), ("tall", (150, 300), "t"), ("square", (100, 100), "s")]}
    )
    items = {i.path.stem: i.bucket for i in ds.assign_buckets(ds.scan(root), (512, 512), buckets).items}
    assert items == {"wide": (704, 320), "tall": (320, 704), "square": (512, 512)}
    fixed = ds.assign_buckets(ds.scan(root), (512, 512), None).items
    assert {i.bucket for i in fixed} == {(512, 512)}


def test_batches_never_mix_buckets_and_repeat_images(tmp_path):
    root = make_dataset(tmp_path, {"3_x": [("wide", (300, 150), "w"), ("square", (100, 100), "s")]})
    dataset = ds.assign_buckets(ds.scan(root), (512, 512), ds.bucket_resolutions((512, 512), 256, 1024, 64))
    batches = ds.epoch_batches(dataset, 2, random.Random(0))
    assert sorted(len(b) for b in batches) == [1, 1, 2, 2]
    assert all(len({i.bucket for i in b}) == 1 for b in batches)
    assert ds.batches_per_epoch(dataset, 2) == 4


def test_pixels_are_cropped_to_the_bucket(tmp_path):
    root = make_dataset(tmp_path, {"1_x": [("wide", (300, 150), "w")]})
    item = ds.assign_buckets(ds.scan(root), (64, 64), [(64, 32)]).items[0]
    pixels, crop = ds.load_pixels(item)
    assert pixels.shape == (3, 32, 64) and -1.0 <= pixels.min() and pixels.max() <= 1.0
    assert crop == (0, 0)


def test_shuffle_caption_keeps_the_first_tokens():
    rng = random.Random(3)
    caption = "sks, cat, sofa, red, window, night"
    shuffled = {ds.shuffle_caption(caption, 2, rng) for _ in range(20)}
    assert len(shuffled) > 1
    assert all(s.startswith("sks, cat, ") and sorted(s.split(", ")) == sorted(caption.split(", ")) for s in shuffled)
