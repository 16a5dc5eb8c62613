"""Encode WebUI prompts (emphasis and its modes, BREAK, long prompts, embeddings, clip skip) into diffusers'
prompt_embeds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openesd.generation.adapters.embeddings import Embedding, load_embeddings
from openesd.errors import PayloadError
from openesd.generation.prompts._chunks import Chunk, Vocabulary, make_chunks
from openesd.generation.payload.options import EMPHASIS_MODES
from openesd.generation.prompts._parser import BREAK, extract_loras, parse_attention

__all__ = ["PromptEmbeds", "encode_prompts", "encode_groups", "extract_loras", "parse_attention"]


@dataclass
class PromptEmbeds:
    """Keyword arguments for a diffusers pipeline call (`prompt_embeds=...` and friends)."""

    prompt_embeds: Any
    negative_prompt_embeds: Any
    pooled_prompt_embeds: Any = None
    negative_pooled_prompt_embeds: Any = None

    def as_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class _Encoder:
    """One text encoder, its tokenizer, and which hidden layer conditions the UNet."""

    text_encoder: Any
    tokenizer: Any
    role: str  # "clip" (SD 1.x/2.x), "clip_l" / "clip_g" (SDXL)
    layer: str  # "last" | "skip" (hidden_states[-clip_skip] + final norm) | "penultimate" (no norm)
    pooled: bool = False


def encode_prompts(
    pipe: Any,
    prompt: str,
    negative_prompt: str,
    clip_skip: int,
    embeddings: list[Path],
    emphasis: str = "Original",
) -> PromptEmbeds:
    """Positive and negative embeddings of equal length, shaped as `pipe(...)` accepts them.

    `emphasis` is the WebUI's option of that name: "Original" scales each token's output by its weight
    and restores each chunk's mean, "No norm" only scales, "Ignore" reads the brackets but weighs every
    token 1, "None" reads the whole prompt as literal text (brackets, backslashes and BREAK included).
    """
    ((embeds, pooled),) = _encode_groups(pipe, [[prompt, negative_prompt]], clip_skip, embeddings, emphasis)
    result = PromptEmbeds(embeds[0:1], embeds[1:2])
    if pooled is not None:
        result.pooled_prompt_embeds, result.negative_pooled_prompt_embeds = pooled[0:1], pooled[1:2]
    return result


def encode_groups(
    pipe: Any, groups: list[list[str]], clip_skip: int, embeddings: list[Path], emphasis: str = "Original"
) -> list[list[tuple[Any, Any]]]:
    """Each group of texts as the WebUI conditions on it, one (hidden (1, n*77, width), pooled) per text.

    A group is one text-encoder batch of the WebUI's (the texts of one prompt's schedule): its texts are
    padded to one chunk count with empty chunks, and "Original" emphasis restores each chunk position's
    mean over the whole batch, as `FrozenCLIPEmbedderWithCustomWordsBase` does.
    """
    encoded = _encode_groups(pipe, groups, clip_skip, embeddings, emphasis, batch_mean=True)
    return [
        [(hidden[i : i + 1], None if pooled is None else pooled[i : i + 1]) for i in range(len(group))]
        for group, (hidden, pooled) in zip(groups, encoded)
    ]


def _encode_groups(
    pipe: Any,
    groups: list[list[str]],
    clip_skip: int,
    embeddings: list[Path],
    emphasis: str,
    *,
    batch_mean: bool = False,
) -> list[tuple[Any, Any]]:
    """(hidden (texts, n*77, width), pooled) per group, each group's texts padded to one chunk count."""
    import torch

    if not isinstance(clip_skip, int) or clip_skip < 1:
        raise PayloadError(f"CLIP_stop_at_last_layers must be a whole number of at least 1, got {clip_skip!r}")
    if emphasis not in EMPHASIS_MODES:
        raise PayloadError(f"emphasis must be one of {', '.join(EMPHASIS_MODES)}; got {emphasis!r}")
    loaded = load_embeddings(list(embeddings or []))
    encoders = _encoders(pipe, clip_skip)
    vocabularies = [_vocabulary(e, loaded) for e in encoders]
    results = []
    for group in groups:
        runs = [_runs(text or "", emphasis) for text in group]
        per_encoder = [[make_chunks(r, vocab) for r in runs] for vocab in vocabularies]
        _pad_to_same_length(per_encoder, encoders)
        hidden, pooled = [], None
        with torch.no_grad():
            for encoder, chunk_lists in zip(encoders, per_encoder):
                states, pool = _encode(encoder, chunk_lists, clip_skip, emphasis, batch_mean)
                hidden.append(states.to(hidden[0].device) if hidden else states)
                pooled = pool if encoder.pooled else pooled
        # SDXL: clip_l (768) then clip_g (1280), as the UNet expects
        results.append((torch.cat(hidden, dim=-1), pooled))
    return results


def _runs(text: str, emphasis: str) -> list[tuple[str, float]]:
    """(fragment, weight) runs as the WebUI's tokenize_line reads them under each emphasis mode."""
    if emphasis == "None":
        return [(text, 1.0)]
    runs = parse_attention(text)
    if emphasis == "Ignore":
        # The fragments stay as parsed (each is tokenized on its own); only the weights go.
        return [(fragment, weight if fragment == BREAK and weight == -1 else 1.0) for fragment, weight in runs]
    return runs


def _encoders(pipe: Any, clip_skip: int) -> list[_Encoder]:
    first = getattr(pipe, "text_encoder", None)
    second = getattr(pipe, "text_encoder_2", None)
    if second is not None or hasattr(pipe, "text_encoder_2"):
        # SDXL (and its refiner, which has only the second encoder): penultimate layer without the
        # final norm for both, as the WebUI and diffusers do; the WebUI ignores clip skip here.
        found = [] if first is None else [_Encoder(first, pipe.tokenizer, "clip_l", "penultimate")]
        if second is not None:
            found.append(_Encoder(second, pipe.tokenizer_2, "clip_g", "penultimate", pooled=True))
        return found
    if first is None:
        raise PayloadError("this pipeline has no text encoder, so it cannot take a prompt")
    # SD 2.x (OpenCLIP, gelu): the loaded encoder already ends at the penultimate layer, and the
    # WebUI ignores clip skip for it; SD 1.x takes hidden_states[-clip_skip] then the final norm.
    open_clip = getattr(first.config, "hidden_act", "") == "gelu"
    layer = "skip" if clip_skip > 1 and not open_clip else "last"
    return [_Encoder(first, pipe.tokenizer, "clip", layer)]


def _vocabulary(encoder: _Encoder, embeddings: list[Embedding]) -> Vocabulary:
    """The tokenizer plus each embedding's name as token ids, longest names tried first."""
    width = encoder.text_encoder.get_input_embeddings().weight.shape[-1]
    table: dict[int, list[tuple[list[int], Any]]] = {}
    names = [e.name for e in embeddings]
    ids_list = encoder.tokenizer(names, truncation=False, add_special_tokens=False)["input_ids"] if names else []
    for embedding, ids in zip(embeddings, ids_list):
        if ids:
            table.setdefault(ids[0], []).append((ids, _LazyVectors(embedding, encoder.role, width)))
    for entries in table.values():
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)
    return Vocabulary(encoder.tokenizer, table)


class _LazyVectors:
    """An embedding's vectors for one encoder, checked only when its name is actually in the prompt."""

    def __init__(self, embedding: Embedding, role: str, width: int):
        self.embedding, self.role, self.width = embedding, role, width

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.resolve().shape)

    def resolve(self) -> Any:
        return self.embedding.for_encoder(self.role, self.width)


def _pad_to_same_length(per_encoder: list[list[list[Chunk]]], encoders: list[_Encoder]) -> None:
    """Diffusers needs cond and uncond of one length: pad with empty-prompt chunks, as the WebUI's pad option."""
    target = max(len(chunks) for lists in per_encoder for chunks in lists)
    for encoder, lists in zip(encoders, per_encoder):
        empty = make_chunks([("", 1.0)], _vocabulary(encoder, []))[0]
        for chunks in lists:
            chunks.extend(Chunk(list(empty.tokens), list(empty.weights)) for _ in range(target - len(chunks)))


def _encode(
    encoder: _Encoder, chunk_lists: list[list[Chunk]], clip_skip: int, emphasis: str, batch_mean: bool = False
) -> tuple[Any, Any]:
    """All chunks of all prompts in one forward pass -> (prompts, chunks*77, width), pooled of chunk 0."""
    import torch

    model = encoder.text_encoder
    device = model.device
    flat = [chunk for chunks in chunk_lists for chunk in chunks]
    ids = torch.tensor([c.tokens for c in flat], dtype=torch.long, device=device)
    handle = _swap_in_embeddings(model, flat)
    try:
        out = model(input_ids=ids, output_hidden_states=encoder.layer != "last")
    finally:
        handle.remove()
    states = _select_layer(encoder, out, clip_skip)
    weights = torch.tensor([c.weights for c in flat], dtype=states.dtype, device=device)
    per_prompt = len(chunk_lists[0])
    if batch_mean:  # one mean per chunk position over the batch's texts
        shape = states.shape
        grouped = _apply_weights(
            states.reshape(len(chunk_lists), per_prompt, *shape[1:]).transpose(0, 1).reshape(per_prompt, -1, shape[2]),
            weights.reshape(len(chunk_lists), per_prompt, -1).transpose(0, 1).reshape(per_prompt, -1),
            emphasis,
        )
        states = grouped.reshape(per_prompt, len(chunk_lists), *shape[1:]).transpose(0, 1).reshape(shape)
    else:
        states = _apply_weights(states, weights, emphasis)
    states = states.reshape(len(chunk_lists), per_prompt * states.shape[1], states.shape[2])
    pooled = None
    if encoder.pooled:
        pooled = out.text_embeds[::per_prompt]  # the WebUI pools the first chunk of each prompt
    return states, pooled


def _swap_in_embeddings(model: Any, chunks: list[Chunk]) -> Any:
    """A forward hook on the token embedding that writes the embeddings' vectors at their offsets."""
    fixes = [(row, offset + 1, vectors.resolve()) for row, c in enumerate(chunks) for offset, vectors in c.fixes]

    def hook(module: Any, args: Any, output: Any) -> Any:
        if not fixes:
            return output
        output = output.clone()
        for row, start, vectors in fixes:
            output[row, start : start + vectors.shape[0]] = vectors.to(output.device, output.dtype)
        return output

    return model.get_input_embeddings().register_forward_hook(hook)


def _select_layer(encoder: _Encoder, out: Any, clip_skip: int) -> Any:
    if encoder.layer == "penultimate":
        return out.hidden_states[-2]
    if encoder.layer == "skip":
        layers = len(out.hidden_states) - 1
        if clip_skip > layers:
            raise PayloadError(f"CLIP_stop_at_last_layers {clip_skip} is more than the text encoder's {layers} layers")
        model = encoder.text_encoder
        norm = getattr(getattr(model, "text_model", model), "final_layer_norm")
        return norm(out.hidden_states[-clip_skip])
    return out.last_hidden_state


def _apply_weights(states: Any, weights: Any, emphasis: str = "Original") -> Any:
    """The WebUI's emphasis on one chunk's output: "No norm" scales each token by its weight, "Original"
    then restores the chunk's mean, "Ignore" and "None" leave the output alone (sd_emphasis.py)."""
    import torch

    if emphasis in ("None", "Ignore"):
        return states
    weighted = states * weights.unsqueeze(-1)
    if emphasis == "No norm":
        return weighted
    original = states.mean(dim=(1, 2), keepdim=True)
    new = weighted.mean(dim=(1, 2), keepdim=True)
    # A chunk whose mean is ~0 (a norm with zero bias) would blow up the ratio; leave it unrestored.
    scale = weighted.abs().mean(dim=(1, 2), keepdim=True) * 1e-4
    usable = (original.abs() > scale) & (new.abs() > scale)
    ratio = torch.where(usable, original / torch.where(usable, new, torch.ones_like(new)), torch.ones_like(new))
    return weighted * ratio
