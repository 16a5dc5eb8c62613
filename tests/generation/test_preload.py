"""`Generator.preload`: the checkpoint is in the cache afterwards, warmed by a tiny txt2img when it can be
(tests/execution/test_warm.py runs the warm path end to end)."""

from __future__ import annotations


def test_a_checkpoint_that_cannot_txt2img_is_still_preloaded(sdxl_refiner_checkpoint, monkeypatch, caplog):
    from openesd.generation import Generator

    generator = Generator(device="cpu")

    def refuse(request, progress=None, previews=None):
        raise ValueError("no txt2img on this model")

    monkeypatch.setattr(generator, "run", refuse)
    generator.preload(sdxl_refiner_checkpoint)
    assert generator.cache.loads == 1
    assert "warm-up txt2img" in caplog.text
