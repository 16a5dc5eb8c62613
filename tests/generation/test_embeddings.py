"""Textual-inversion embeddings: WebUI file formats, used by name in a prompt, refused when pickled."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.generation.adapters.embeddings import load_embeddings
from openesd.errors import ModelError
from openesd.generation.prompts.encoding import encode_prompts
from tests.support import tiny_adapters as ta
from tests.support import tiny_models as tm

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def sd15():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**tm.tiny_sd15_components())


def render(pipe, prompt, embeddings):
    embeds = encode_prompts(pipe, prompt, "", 1, embeddings)
    out = pipe(
        **embeds.as_kwargs(),
        num_inference_steps=2,
        height=32,
        width=32,
        output_type="np",
        generator=torch.Generator().manual_seed(3),
    )
    return out.images[0]


def test_pt_and_safetensors_embeddings_load_with_the_file_stem_as_name(tmp_path):
    pt = ta.write_embedding_pt(tmp_path / "shiny-style.pt", count=3)
    st = ta.write_embedding_safetensors(tmp_path / "easyneg.safetensors", count=2)
    xl = ta.write_sdxl_embedding(tmp_path / "xlneg.safetensors")
    loaded = {e.name: e for e in load_embeddings([pt, st, xl])}
    assert set(loaded) == {"shiny-style", "easyneg", "xlneg"}
    assert torch.equal(loaded["shiny-style"].for_encoder("clip", tm.TEXT_HIDDEN_SIZE), ta.embedding_vectors(3))
    assert loaded["easyneg"].for_encoder("clip", tm.TEXT_HIDDEN_SIZE).shape == (2, tm.TEXT_HIDDEN_SIZE)
    assert torch.equal(
        loaded["xlneg"].for_encoder("clip_g", tm.TEXT2_HIDDEN_SIZE),
        ta.embedding_vectors(2, tm.TEXT2_HIDDEN_SIZE, seed=4),
    )


def test_embedding_named_in_the_prompt_changes_the_image(sd15, tmp_path):
    emb = ta.write_embedding_pt(tmp_path / "shinystyle.pt", count=2)
    without = render(sd15, "a photo of a cat", [emb])
    used = render(sd15, "a photo of a cat, shinystyle", [emb])
    plain_word = render(sd15, "a photo of a cat, shinystyle", [])
    assert np.abs(used - without).max() > 0.01
    assert np.abs(used - plain_word).max() > 0.01


def test_embedding_vectors_replace_the_name_tokens(sd15, tmp_path):
    emb = ta.write_embedding_safetensors(tmp_path / "zq.safetensors", count=2)
    with_emb = encode_prompts(sd15, "zq cat", "", 1, [emb]).prompt_embeds
    # Two vectors for one name: "cat" moves one place to the right (BOS, v1, v2, cat, EOS).
    ids = [sd15.tokenizer.bos_token_id, 0, 0, *sd15.tokenizer("cat", add_special_tokens=False).input_ids]
    ids += [sd15.tokenizer.eos_token_id] * (77 - len(ids))
    vectors = ta.embedding_vectors(2)

    def swap(module, args, output):
        output = output.clone()
        output[0, 1:3] = vectors
        return output

    handle = sd15.text_encoder.get_input_embeddings().register_forward_hook(swap)
    try:
        with torch.no_grad():
            expected = sd15.text_encoder(torch.tensor([ids])).last_hidden_state
    finally:
        handle.remove()
    assert torch.allclose(with_emb, expected, atol=1e-6)


def test_embeddings_do_not_leak_into_the_next_job(sd15, tmp_path):
    emb = ta.write_embedding_pt(tmp_path / "shinystyle.pt")
    before = encode_prompts(sd15, "shinystyle cat", "", 1, []).prompt_embeds
    encode_prompts(sd15, "shinystyle cat", "", 1, [emb])
    after = encode_prompts(sd15, "shinystyle cat", "", 1, []).prompt_embeds
    assert torch.equal(before, after)
    assert len(sd15.tokenizer) == 49408


def test_pickled_pt_is_refused_without_running_its_code(tmp_path):
    bad = ta.write_pickled_embedding(tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="'evil.pt' was refused: it holds pickled objects"):
        load_embeddings([bad])
    assert ta.UNPICKLED == []


def test_embedding_for_another_model_fails_only_when_used(sd15, tmp_path):
    wide = ta._save_safetensors(tmp_path / "sd15neg.safetensors", {"emb_params": torch.randn(2, 768)})
    encode_prompts(sd15, "a cat", "", 1, [wide])  # present but unused: fine
    with pytest.raises(ModelError, match="'sd15neg' has vectors of width 768.*needs width 32"):
        encode_prompts(sd15, "a cat", "sd15neg", 1, [wide])


def test_sdxl_embedding_feeds_both_encoders(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(**tm.tiny_sdxl_components())
    emb = ta.write_sdxl_embedding(tmp_path / "xlstyle.safetensors")
    plain = encode_prompts(pipe, "a cat", "", 1, [emb])
    used = encode_prompts(pipe, "a cat xlstyle", "", 1, [emb])
    first = tm.TEXT_HIDDEN_SIZE  # clip_l's part of the context, then clip_g's
    assert not torch.allclose(plain.prompt_embeds[..., :first], used.prompt_embeds[..., :first])
    assert not torch.allclose(plain.prompt_embeds[..., first:], used.prompt_embeds[..., first:])
    assert not torch.allclose(plain.pooled_prompt_embeds, used.pooled_prompt_embeds)
