"""WebUI prompt syntax and weighted prompt encoding on the tiny SD 1.x and SDXL text encoders."""

from __future__ import annotations

import pytest

from openesd.errors import PayloadError
from openesd.generation.prompts.encoding import encode_prompts, extract_loras, parse_attention
from tests.support import tiny_models as tm

torch = pytest.importorskip("torch")


# ---- the parser: the WebUI's documented examples ------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.573),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641),
                (".", 1.1),
            ],
        ),
        ("((word))", [("word", 1.21)]),
        ("[word]", [("word", 1 / 1.1)]),
        ("(word:1.3)", [("word", 1.3)]),
        ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_parse_attention_matches_the_webui(prompt, expected):
    parsed = parse_attention(prompt)
    assert [text for text, _ in parsed] == [text for text, _ in expected]
    assert [w for _, w in parsed] == pytest.approx([w for _, w in expected])


def test_extract_loras_strips_tags_and_reads_weights():
    clean, loras = extract_loras("cat <lora:style:0.7>, dog <lora:detail> <lora:two:0.4:0.9> <lyco:ly:2>")
    assert clean == "cat , dog   "
    assert loras == [("style", 0.7), ("detail", 1.0), ("two", 0.4), ("ly", 2.0)]


def test_extract_loras_refuses_other_extra_networks_and_bad_weights():
    with pytest.raises(PayloadError, match="<hypernet:h:1>.*not supported"):
        extract_loras("cat <hypernet:h:1>")
    with pytest.raises(PayloadError, match="'abc'"):
        extract_loras("cat <lora:style:abc>")


# ---- SD 1.x encoding ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd15():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**tm.tiny_sd15_components())


def test_plain_prompt_encodes_as_diffusers_does(sd15):
    ours = encode_prompts(sd15, "a photo of a cat", "blurry", 1, [])
    theirs, negative = sd15.encode_prompt("a photo of a cat", "cpu", 1, True, "blurry")
    assert torch.equal(ours.prompt_embeds, theirs)
    assert torch.equal(ours.negative_prompt_embeds, negative)


def test_emphasis_changes_the_embedding_and_weight_one_does_not(sd15):
    plain = encode_prompts(sd15, "a photo of a cat", "", 1, []).prompt_embeds
    unit = encode_prompts(sd15, "a photo of a (cat:1.0)", "", 1, []).prompt_embeds
    strong = encode_prompts(sd15, "a photo of a (cat:1.5)", "", 1, []).prompt_embeds
    assert torch.allclose(plain, unit)
    cat = 5  # BOS, a, photo, of, a, cat
    change = (strong - plain).abs().amax(dim=-1)[0]
    assert change[cat] > 1e-3
    assert torch.allclose(strong[0, cat], plain[0, cat] * 1.5, rtol=1e-4, atol=1e-5)


def test_long_prompt_becomes_two_chunks_with_bos_and_eos_each(sd15):
    long = ", ".join(["a red house"] * 30)  # 30 * 4 tokens = 119 > 75
    embeds = encode_prompts(sd15, long, "", 1, [])
    assert embeds.prompt_embeds.shape == (1, 154, tm.TEXT_HIDDEN_SIZE)
    # The negative prompt is padded with empty-prompt chunks to the same length.
    assert embeds.negative_prompt_embeds.shape == (1, 154, tm.TEXT_HIDDEN_SIZE)
    empty = encode_prompts(sd15, "", "", 1, []).prompt_embeds
    assert torch.allclose(embeds.negative_prompt_embeds[:, 77:], empty)


def test_break_starts_a_new_chunk(sd15):
    broken = encode_prompts(sd15, "a cat BREAK a dog", "", 1, []).prompt_embeds
    assert broken.shape == (1, 154, tm.TEXT_HIDDEN_SIZE)
    second = encode_prompts(sd15, "a dog", "", 1, []).prompt_embeds
    assert torch.allclose(broken[:, 77:], second)


def test_clip_skip_two_uses_the_penultimate_layer(sd15):
    skip1 = encode_prompts(sd15, "a photo of a cat", "", 1, []).prompt_embeds
    skip2 = encode_prompts(sd15, "a photo of a cat", "", 2, []).prompt_embeds
    assert not torch.allclose(skip1, skip2)
    # The WebUI's "Clip skip 2": the penultimate hidden state through the final layer norm.
    # (diffusers' own clip_skip reaches for `text_model`, which transformers 5 no longer has.)
    ids = sd15.tokenizer("a photo of a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = sd15.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        expected = sd15.text_encoder.final_layer_norm(hidden)
    assert torch.allclose(skip2, expected, atol=1e-6)


def test_clip_skip_out_of_range_fails_clearly(sd15):
    with pytest.raises(PayloadError, match="CLIP_stop_at_last_layers 9"):
        encode_prompts(sd15, "cat", "", 9, [])
    with pytest.raises(PayloadError, match="at least 1, got 0"):
        encode_prompts(sd15, "cat", "", 0, [])


def test_pipeline_accepts_the_embeddings_and_emphasis_changes_the_image(sd15):
    def image(prompt):
        embeds = encode_prompts(sd15, prompt, "", 1, [])
        out = sd15(
            **embeds.as_kwargs(),
            num_inference_steps=2,
            height=32,
            width=32,
            output_type="np",
            generator=torch.Generator().manual_seed(1),
        )
        return out.images[0]

    plain, strong = image("a photo of a cat"), image("a photo of a (cat:1.8)")
    assert plain.shape == (32, 32, 3)
    assert abs(plain - strong).max() > 1e-3


# ---- SDXL encoding -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdxl():
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(**tm.tiny_sdxl_components())


def test_sdxl_uses_both_encoders_and_the_pooled_output_as_diffusers_does(sdxl):
    ours = encode_prompts(sdxl, "a photo of a cat", "blurry", 1, [])
    theirs = sdxl.encode_prompt("a photo of a cat", device="cpu", negative_prompt="blurry")
    assert ours.prompt_embeds.shape == (1, 77, tm.SDXL_CROSS_ATTENTION_DIM)
    assert ours.pooled_prompt_embeds.shape == (1, tm.SDXL_POOLED_DIM)
    for mine, reference in zip(
        (
            ours.prompt_embeds,
            ours.negative_prompt_embeds,
            ours.pooled_prompt_embeds,
            ours.negative_pooled_prompt_embeds,
        ),
        theirs,
    ):
        assert torch.allclose(mine, reference, atol=1e-6)


def test_sdxl_long_prompt_keeps_the_first_chunks_pooled_output(sdxl):
    long = ", ".join(["a red house"] * 30)
    embeds = encode_prompts(sdxl, long, "", 1, [])
    assert embeds.prompt_embeds.shape == (1, 154, tm.SDXL_CROSS_ATTENTION_DIM)
    assert embeds.pooled_prompt_embeds.shape == (1, tm.SDXL_POOLED_DIM)


def test_weighting_restores_each_chunks_mean():
    from openesd.generation.prompts.encoding import _apply_weights

    states = torch.rand(2, 77, 8) + 0.5
    weights = torch.ones(2, 77)
    weights[0, 5] = 1.5
    out = _apply_weights(states, weights)
    assert torch.allclose(out.mean(dim=(1, 2)), states.mean(dim=(1, 2)))
    # The weighted token grows 1.5x relative to its neighbours; the unweighted chunk is untouched.
    assert torch.allclose(out[0, 5] / out[0, 4], states[0, 5] / states[0, 4] * 1.5, rtol=1e-5)
    assert torch.allclose(out[1], states[1])


# ---- chunking rules (tokenizer only) -----------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return tm.tiny_tokenizer()


def _chunks(tokenizer, prompt, embeddings=None):
    from openesd.generation.prompts._chunks import Vocabulary, make_chunks

    return make_chunks(parse_attention(prompt), Vocabulary(tokenizer, embeddings or {}))


def test_words_after_the_last_comma_move_to_the_next_chunk(tokenizer):
    cat, dog = (tokenizer(w, add_special_tokens=False).input_ids[0] for w in ("cat", "dog"))
    chunks = _chunks(tokenizer, "cat " * 70 + ", " + "dog " * 10)
    assert len(chunks) == 2 and all(len(c.tokens) == 77 for c in chunks)
    first, second = chunks
    assert first.tokens[1:71] == [cat] * 70 and first.tokens[72] == tokenizer.eos_token_id  # ends at the comma
    assert second.tokens[:12] == [tokenizer.bos_token_id] + [dog] * 10 + [tokenizer.eos_token_id]


def test_an_embedding_never_straddles_two_chunks(tokenizer):
    name = tokenizer("zq", add_special_tokens=False).input_ids
    vectors = torch.zeros(4, tm.TEXT_HIDDEN_SIZE)
    chunks = _chunks(tokenizer, "cat " * 73 + "zq", {name[0]: [(name, vectors)]})
    assert len(chunks) == 2
    assert chunks[0].fixes == [] and chunks[1].fixes[0][0] == 0  # the 4 vectors open the second chunk
    assert chunks[1].weights[1:5] == [1.0] * 4


def test_emphasis_weights_reach_their_tokens(tokenizer):
    (chunk,) = _chunks(tokenizer, "a (cat:1.5) [dog]")
    assert chunk.weights[:5] == pytest.approx([1.0, 1.0, 1.5, 1 / 1.1, 1.0])


def test_sd2_pads_with_its_own_token_and_ignores_clip_skip_as_the_webui_does():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**tm.tiny_sd2_components())
    skip1 = encode_prompts(pipe, "a photo of a cat", "blurry", 1, [])
    skip2 = encode_prompts(pipe, "a photo of a cat", "blurry", 2, [])
    theirs, negative = pipe.encode_prompt("a photo of a cat", "cpu", 1, True, "blurry")
    assert torch.equal(skip1.prompt_embeds, theirs) and torch.equal(skip1.negative_prompt_embeds, negative)
    assert torch.equal(skip1.prompt_embeds, skip2.prompt_embeds)


def test_sdxl_refiner_uses_its_one_encoder_with_pooled_output():
    from diffusers import StableDiffusionXLImg2ImgPipeline

    pipe = StableDiffusionXLImg2ImgPipeline(
        **tm.tiny_sdxl_refiner_components(), text_encoder=None, tokenizer=None, requires_aesthetics_score=True
    )
    ours = encode_prompts(pipe, "a photo of a cat", "blurry", 1, [])
    theirs = pipe.encode_prompt("a photo of a cat", device="cpu", negative_prompt="blurry")
    assert ours.prompt_embeds.shape == (1, 77, tm.TEXT2_HIDDEN_SIZE)
    for mine, reference in zip(
        (
            ours.prompt_embeds,
            ours.negative_prompt_embeds,
            ours.pooled_prompt_embeds,
            ours.negative_pooled_prompt_embeds,
        ),
        theirs,
    ):
        assert torch.allclose(mine, reference, atol=1e-6)
