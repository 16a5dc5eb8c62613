"""The pure-Python header reader the API checks datasets with: same sizes as Pillow, cut-off files refused."""

from __future__ import annotations

import io

import pytest

from openesd.trainer._image_header import NotAnImage, read_header

SAVE_OPTIONS = {"PNG": {}, "JPEG": {"quality": 80}, "WEBP": {"lossless": True}, "BMP": {}, "GIF": {}}


def encode(fmt: str, size: tuple[int, int], mode: str = "RGB", **options) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt, **(SAVE_OPTIONS[fmt] | options))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt, options",
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("WEBP", {}),
        ("WEBP", {"lossless": False}),
        ("BMP", {}),
        ("GIF", {}),
    ],
)
def test_format_and_size_match_what_pillow_reads(tmp_path, fmt, options):
    path = tmp_path / "image"
    path.write_bytes(encode(fmt, (37, 23), **options))
    assert (read_header(path).format, read_header(path).width, read_header(path).height) == (fmt, 37, 23)


def test_a_jpeg_frame_header_after_a_large_exif_segment_is_found(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: pushes the frame header past the first 60 kB
    path = tmp_path / "big-exif.jpg"
    path.write_bytes(encode("JPEG", (40, 30), exif=exif.tobytes()))
    assert read_header(path).width == 40 and read_header(path).height == 30


def test_a_webp_with_an_alpha_channel_uses_the_extended_header(tmp_path):
    path = tmp_path / "alpha.webp"
    path.write_bytes(encode("WEBP", (50, 20), mode="RGBA", lossless=False))
    assert (read_header(path).width, read_header(path).height) == (50, 20)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_a_file_cut_short_is_refused(tmp_path, fmt):
    data = encode(fmt, (64, 64))
    path = tmp_path / "cut"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(NotAnImage, match="cut short"):
        read_header(path)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not an image at all", "not a PNG, JPEG, WEBP, BMP or GIF file"),
        (b"", "not a PNG, JPEG, WEBP, BMP or GIF file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "RIFF file that is not a WEBP image"),
        (b"\xff\xd8\xff\xd9", "JPEG without a frame header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x00\x00\x00\x00\x05IEND", "size of 0x5"),
    ],
)
def test_what_is_not_an_image_says_why(tmp_path, data, message):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(NotAnImage, match=message):
        read_header(path)
