"""The shared image helpers: WebUI base64 input, PNG output with the A1111 infotext chunk."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from openesd.errors import GenerationError
from openesd.generation.images import decode_image, encode_png
from tests.support.tiny_extras import sample_image, to_base64


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_decode_bare_base64_and_data_urls(prefix):
    original = sample_image(20, 10)
    decoded = decode_image(prefix + to_base64(original, "PNG"))
    assert decoded.size == (20, 10)
    assert (np.asarray(decoded) == np.asarray(original)).all()


def test_decode_refuses_what_is_not_an_image():
    with pytest.raises(GenerationError, match=r"image is not a readable image \(11 bytes"):
        decode_image("aGVsbG8gd29ybGQ=")
    with pytest.raises(GenerationError, match="image is empty"):
        decode_image("   ")


def test_png_carries_the_parameters_chunk_only_when_given():
    image = sample_image(16, 16)
    infotext = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 16x16"
    with_text = Image.open(io.BytesIO(encode_png(image, infotext)))
    assert with_text.format == "PNG" and with_text.text == {"parameters": infotext}
    plain = Image.open(io.BytesIO(encode_png(image)))
    assert plain.text == {}
    assert (np.asarray(plain) == np.asarray(image)).all()


def test_png_bytes_are_the_same_every_time():
    image = sample_image(16, 16)
    assert encode_png(image, "x") == encode_png(image.copy(), "x")
