"""The prompt as the WebUI's CFG denoiser reads it at each model call: the prompt schedule of every
composable `AND` part and of the negative prompt, each encoded as one text-encoder batch
(`prompt_parser.get_learned_conditioning`), AND parts brought to one length (`stack_conds`), and the
padding options of the WebUI's CFG denoiser."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openesd.generation.prompts.schedules import ScheduledPrompt, composable_schedule, prompt_schedule, text_at_step


@dataclass
class Cond:
    """One text's encoding for the UNet: hidden states (1, tokens, width) and SDXL's pooled vector."""

    hidden: Any
    pooled: Any = None


@dataclass
class Schedule:
    """One prompt's (end step, text) schedule and its texts' encodings, made together as the WebUI does."""

    entries: list[ScheduledPrompt]
    encoded: dict[str, Cond]

    def at(self, step: int) -> Cond:
        return self.encoded[text_at_step(self.entries, step)]


# Encodes groups of texts: each group in one text-encoder batch (padded to one chunk count with empty
# chunks, emphasis restoring the batch's mean), one list of Conds per group.
Encoder = Callable[[list[list[str]]], list[list[Cond]]]


@dataclass
class Conditioning:
    """The prompt and negative prompt of one pass as the WebUI's CFG denoiser reads them per step.

    As `prompt_parser.get_learned_conditioning`: each AND part's schedule, and the negative prompt's,
    is encoded as one batch of its texts.
    """

    parts: list[tuple[float, Schedule]]  # composable AND parts: (weight, schedule)
    negative: Schedule
    empty: Cond | None = None  # the empty prompt's chunk, for the WebUI's pad_cond_uncond options

    @classmethod
    def build(
        cls,
        prompt: str,
        negative_prompt: str,
        steps: int,
        encode: Encoder,
        *,
        hires_steps: int | None = None,
        use_old_scheduling: bool = False,
        with_empty: bool = False,
        zero_empty_negative: bool = False,
    ) -> Conditioning:
        """`zero_empty_negative`: SDXL, where the WebUI conditions an empty negative prompt on zeros."""
        schedules = [
            (part.weight, part.schedule) for part in composable_schedule(prompt, steps, hires_steps, use_old_scheduling)
        ]
        schedules.append((0.0, prompt_schedule(negative_prompt, steps, hires_steps, use_old_scheduling)))
        groups = [list(dict.fromkeys(entry.text for entry in entries)) for _, entries in schedules]
        encoded = encode(groups + ([[""]] if with_empty else []))
        made = [
            Schedule(entries, dict(zip(texts, conds))) for (_, entries), texts, conds in zip(schedules, groups, encoded)
        ]
        negative, weights = made.pop(), [weight for weight, _ in schedules[:-1]]
        if zero_empty_negative and negative_prompt == "":
            negative.encoded = {text: _zeros(cond) for text, cond in negative.encoded.items()}
        empty = encoded[-1][0] if with_empty else None
        return cls(list(zip(weights, made)), negative, empty)

    def at(self, step: int) -> tuple[Cond, list[tuple[float, Cond]]]:
        """The uncond and the weighted conds of one model call. The AND parts are brought to one length
        by repeating their last token vector, as the WebUI's `stack_conds` does."""
        parts = [(weight, schedule.at(step)) for weight, schedule in self.parts]
        longest = max(cond.hidden.shape[1] for _, cond in parts)
        return self.negative.at(step), [(weight, extend(cond, longest)) for weight, cond in parts]

    def pipeline_embeds(self) -> dict[str, Any]:
        """The pipeline's own prompt kwargs: step 0's first part and negative at one length (padded by
        repeating the last vector). Only ControlNet reads them; the UNet stand-in conditions itself."""
        uncond, parts = self.at(0)
        cond = parts[0][1]
        longest = max(cond.hidden.shape[1], uncond.hidden.shape[1])
        cond, uncond = extend(cond, longest), extend(uncond, longest)
        embeds = {"prompt_embeds": cond.hidden, "negative_prompt_embeds": uncond.hidden}
        if cond.pooled is not None:
            embeds.update(pooled_prompt_embeds=cond.pooled, negative_pooled_prompt_embeds=uncond.pooled)
        return embeds


def _zeros(cond: Cond) -> Cond:
    return Cond(
        cond.hidden.new_zeros(cond.hidden.shape),
        None if cond.pooled is None else cond.pooled.new_zeros(cond.pooled.shape),
    )


def extend(cond: Cond, length: int) -> Cond:
    import torch

    missing = length - cond.hidden.shape[1]
    if missing <= 0:
        return cond
    return Cond(torch.cat([cond.hidden, cond.hidden[:, -1:].repeat(1, missing, 1)], dim=1), cond.pooled)


def pad_with_empty(cond: Cond, length: int, empty: Cond) -> Cond:
    import torch

    repeats = (length - cond.hidden.shape[1]) // empty.hidden.shape[1]
    if repeats <= 0:
        return cond
    return Cond(torch.cat([cond.hidden, empty.hidden.repeat(1, repeats, 1)], dim=1), cond.pooled)
