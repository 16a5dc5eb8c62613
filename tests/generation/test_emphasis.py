"""The WebUI's `emphasis` option on the tiny SD 1.x text encoder, measured against the formulas of its
sd_emphasis.py written out here: "Original" z*w * mean(z)/mean(z*w), "No norm" z*w, "Ignore" z with the
brackets read, "None" z of the literal text."""

from __future__ import annotations

import pytest

from openesd.errors import PayloadError
from openesd.generation.prompts.encoding import encode_prompts
from tests.support import tiny_models as tm

torch = pytest.importorskip("torch")

PROMPT = "a photo of a (cat:1.5), [dog]"


@pytest.fixture(scope="module")
def sd15():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**tm.tiny_sd15_components())
    # A final norm with a bias gives every chunk a mean well away from zero, so "Original"'s mean
    # restoration really rescales (with the random tiny weights the mean is ~0 and it would not).
    with torch.no_grad():
        pipe.text_encoder.final_layer_norm.bias.fill_(0.5)
    return pipe


def _chunk(pipe, fragments: list[tuple[str, float]]):
    """One 77-token chunk as the WebUI builds it: BOS, each fragment tokenized on its own, EOS padding;
    the multiplier of each token is its fragment's weight, 1 for BOS and padding."""
    ids, weights = [pipe.tokenizer.bos_token_id], [1.0]
    for text, weight in fragments:
        tokens = pipe.tokenizer(text, add_special_tokens=False).input_ids
        ids += tokens
        weights += [weight] * len(tokens)
    pad = 77 - len(ids)
    ids += [pipe.tokenizer.eos_token_id] * pad
    weights += [1.0] * pad
    with torch.no_grad():
        z = pipe.text_encoder(torch.tensor([ids])).last_hidden_state
    return z, torch.tensor([weights]).unsqueeze(-1)


PARSED = [("a photo of a ", 1.0), ("cat", 1.5), (", ", 1.0), ("dog", 1 / 1.1)]


def _ours(pipe, mode: str, prompt: str = PROMPT):
    return encode_prompts(pipe, prompt, "", 1, [], emphasis=mode).prompt_embeds


def test_original_scales_tokens_then_restores_the_chunk_mean(sd15):
    z, w = _chunk(sd15, PARSED)
    expected = z * w * (z.mean() / (z * w).mean())
    assert abs(float(z.mean())) > 0.1  # the restoration is not a no-op here
    assert torch.allclose(_ours(sd15, "Original"), expected, atol=1e-5)
    assert not torch.allclose(_ours(sd15, "Original"), z * w, atol=1e-4)


def test_no_norm_only_scales_tokens(sd15):
    z, w = _chunk(sd15, PARSED)
    assert torch.allclose(_ours(sd15, "No norm"), z * w, atol=1e-6)


def test_ignore_reads_the_brackets_but_weighs_every_token_one(sd15):
    z, _ = _chunk(sd15, [(text, 1.0) for text, _ in PARSED])
    assert torch.allclose(_ours(sd15, "Ignore"), z, atol=1e-6)


def test_none_reads_the_whole_prompt_as_literal_text(sd15):
    z, _ = _chunk(sd15, [(PROMPT, 1.0)])
    assert torch.allclose(_ours(sd15, "None"), z, atol=1e-6)
    # BREAK is text too: one chunk, where the other modes start a second.
    assert _ours(sd15, "None", "a cat BREAK a dog").shape[1] == 77
    assert _ours(sd15, "Original", "a cat BREAK a dog").shape[1] == 154


def test_a_prompt_without_weights_is_the_same_in_every_mode(sd15):
    plain = _ours(sd15, "Original", "a photo of a cat")
    for mode in ("No norm", "Ignore", "None"):
        assert torch.allclose(_ours(sd15, mode, "a photo of a cat"), plain, atol=1e-6)


def test_an_unknown_mode_is_refused_naming_the_modes(sd15):
    with pytest.raises(PayloadError, match="emphasis must be one of None, Ignore, Original, No norm; got 'Strong'"):
        _ours(sd15, "Strong")


def test_a_schedules_texts_are_one_batch_padded_and_weighted_together(sd15):
    """The WebUI encodes a prompt's schedule (`[(cat:1.5):a long ... :0.5]`) as one batch: every text gets
    the batch's chunk count (empty chunks added) and "Original" emphasis restores each chunk position's
    mean over the whole batch, not per text."""
    from openesd.generation.prompts.encoding import encode_groups

    long = ", ".join(["a red house"] * 30)  # two chunks
    texts = ["a (cat:1.5)", long]
    ((cat, house),) = encode_groups(sd15, [texts], 1, [])
    assert cat[0].shape == house[0].shape == (1, 154, tm.TEXT_HIDDEN_SIZE)
    empty = encode_prompts(sd15, "", "", 1, []).prompt_embeds
    assert torch.allclose(cat[0][:, 77:], empty, atol=1e-6)
    # Expected, from the unweighted ("Ignore") and scaled-only ("No norm") encodings of the same batch.
    ((raw_cat, raw_house),) = encode_groups(sd15, [texts], 1, [], "Ignore")
    ((scaled_cat, scaled_house),) = encode_groups(sd15, [texts], 1, [], "No norm")
    first_raw = torch.cat([raw_cat[0][:, :77], raw_house[0][:, :77]])
    first_scaled = torch.cat([scaled_cat[0][:, :77], scaled_house[0][:, :77]])
    expected = scaled_cat[0][:, :77] * (first_raw.mean() / first_scaled.mean())
    assert abs(float(first_raw.mean())) > 0.1  # the restoration is not a no-op here
    assert torch.allclose(cat[0][:, :77], expected, rtol=1e-5, atol=1e-5)
    alone = encode_prompts(sd15, "a (cat:1.5)", "", 1, []).prompt_embeds
    assert not torch.allclose(cat[0][:, :77], alone, rtol=1e-5, atol=1e-4)
