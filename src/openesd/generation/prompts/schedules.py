"""The WebUI's prompt scheduling: prompt editing `[from:to:when]`, alternation `[a|b]` and composable `AND`.

Pure text, no model: a prompt and a step count give the (end_step, text) list the sampler conditions on,
as the WebUI 1.10's `get_learned_conditioning_prompt_schedules` and `get_multicond_prompt_list` do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple, Union

from openesd.errors import PayloadError

__all__ = [
    "ComposablePart",
    "ScheduledPrompt",
    "SubPrompt",
    "composable_schedule",
    "prompt_schedule",
    "split_and",
    "text_at_step",
]


class ScheduledPrompt(NamedTuple):
    """`text` conditions every step up to and including `end_at_step`."""

    end_at_step: int
    text: str


class SubPrompt(NamedTuple):
    """One `AND`-separated part of a prompt and its composable weight (`part :1.2`)."""

    text: str
    weight: float


class ComposablePart(NamedTuple):
    """A sub-prompt's weight and its own schedule."""

    weight: float
    schedule: list[ScheduledPrompt]


# ---- the tree ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Edit:
    """`[before:after:when]`; `before` is None for `[after:when]`; `when` is the number as written."""

    before: tuple[_Node, ...] | None
    after: tuple[_Node, ...]
    when: str


@dataclass(frozen=True)
class _Alternation:
    options: tuple[tuple[_Node, ...], ...]


_Node = Union[str, _Edit, _Alternation]

# Text is anything but the grammar's characters; a backslash escapes any one character (kept as
# written: the emphasis parser reads the escape later). A lone backslash at the end, or before a
# newline, matches nothing, so the whole prompt is then taken literally, as in the WebUI.
_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
_NUMBER = r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?"
_WHEN = re.compile(rf"\s*({_NUMBER})\s*\]")  # the end of an edit: `:` then this


class _NoMatch(Exception):
    """The bracket being read is not a construct; at the top level its opener is then plain text."""


class _Parser:
    """Recursive descent over the WebUI's grammar.

    Inside a construct everything must be a construct or text; only at the top level may a bracket or
    colon that starts nothing stand as itself (`a [unbalanced`, `(a:b:1.2)`). A `|` outside any
    alternation makes the whole prompt plain text.
    """

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def top(self) -> tuple[_Node, ...] | None:
        nodes: list[_Node] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in "([":
                start = self.pos
                try:
                    nodes.extend(self._construct())
                    continue
                except _NoMatch:
                    self.pos = start + 1
                    nodes.append(char)
            elif char in ")]:":
                self.pos += 1
                nodes.append(char)
            else:
                try:
                    nodes.append(self._plain())
                except _NoMatch:  # a `|` outside an alternation, or a backslash escaping nothing
                    return None
        return tuple(nodes)

    def _inner(self) -> tuple[_Node, ...]:
        """A run of text and constructs, up to the next `)`, `]`, `:` or `|`."""
        nodes: list[_Node] = []
        while self.pos < len(self.text) and self.text[self.pos] not in ")]:|":
            nodes.extend(self._construct() if self.text[self.pos] in "([" else [self._plain()])
        return tuple(nodes)

    def _construct(self) -> list[_Node]:
        opener = self.text[self.pos]
        self.pos += 1
        first = self._inner()
        if opener == "(":
            return self._emphasis(first)
        closer = self._take()
        if closer == "]":  # `[text]`: de-emphasis, which the schedule keeps as written
            return ["[", *first, "]"]
        if closer == "|":
            return [self._alternation(first)]
        if closer == ":":
            return [self._edit(first)]
        raise _NoMatch

    def _emphasis(self, first: tuple[_Node, ...]) -> list[_Node]:
        closer = self._take()
        if closer == ")":
            return ["(", *first, ")"]
        if closer == ":":
            weight = self._inner()
            if self._take() == ")":
                return ["(", *first, ":", *weight, ")"]
        raise _NoMatch

    def _alternation(self, first: tuple[_Node, ...]) -> _Alternation:
        options = [first, self._inner()]
        while (closer := self._take()) == "|":
            options.append(self._inner())
        if closer != "]":
            raise _NoMatch
        return _Alternation(tuple(options))

    def _edit(self, first: tuple[_Node, ...]) -> _Edit:
        if when := self._when():  # `[to:when]`
            return _Edit(None, first, when)
        second = self._inner()
        if self._take() == ":" and (when := self._when()):
            return _Edit(first, second, when)
        raise _NoMatch

    def _when(self) -> str | None:
        match = _WHEN.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group(1)

    def _plain(self) -> str:
        match = _PLAIN.match(self.text, self.pos)
        if match is None:
            raise _NoMatch
        self.pos = match.end()
        return match.group(0)

    def _take(self) -> str:
        if self.pos >= len(self.text):
            raise _NoMatch
        self.pos += 1
        return self.text[self.pos - 1]


# ---- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timing:
    """How `when` becomes a step: the WebUI's rules for the first pass, the hires pass and old scheduling."""

    steps: int
    int_offset: int = 0
    fraction_offset: float = 0.0
    old: bool = False

    def step(self, when: str) -> int:
        value = float(when)
        if self.old:  # below 1 a fraction, else a step, whatever is written
            value = value * self.steps if value < 1 else value
        elif "." in when:  # written with a point: a fraction of the first pass (1.5: half the hires pass)
            value = (value - self.fraction_offset) * self.steps
        else:  # a whole number: a step, counted from the first pass's start
            value = value - self.int_offset
        if not math.isfinite(value):
            raise PayloadError(f"prompt editing step {when!r} is not a finite number")
        return min(self.steps, int(value))  # int() truncates: 0.25 of 10 steps is step 2, not 3


def prompt_schedule(
    prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[ScheduledPrompt]:
    """The texts `prompt` conditions on over `steps` steps, each with the last step it applies to.

    With `hires_steps` the schedule is the hires pass's: `when` counts from the first pass's start,
    so `[a:b:15]` after a 10-step first pass switches at hires step 5, and `[a:b:1.5]` halfway through
    the hires pass. `use_old_scheduling` is the WebUI's option of that name: `when` below 1 is a
    fraction, else a step, and the hires pass schedules as a first pass of `steps` steps.
    """
    if not isinstance(steps, int) or steps < 1:
        raise PayloadError(f"steps must be a whole number of at least 1, got {steps!r}")
    timing = _timing(steps, hires_steps, use_old_scheduling)
    tree = _Parser(prompt).top()
    if tree is None:  # not the grammar: the WebUI conditions on the prompt as written
        return [ScheduledPrompt(timing.steps, prompt)]
    ends = sorted(_switch_steps(tree, timing) | {timing.steps})
    return [ScheduledPrompt(end, _text(tree, end, timing)) for end in ends]


def _timing(steps: int, hires_steps: int | None, old: bool) -> _Timing:
    if hires_steps is None or old:
        return _Timing(steps, old=old)
    if not isinstance(hires_steps, int) or hires_steps < 1:
        raise PayloadError(f"hires steps must be a whole number of at least 1, got {hires_steps!r}")
    return _Timing(hires_steps, int_offset=steps, fraction_offset=1.0)


def _switch_steps(nodes: tuple[_Node, ...], timing: _Timing) -> set[int]:
    """Every step after which some part of the prompt changes, including parts not yet shown."""
    found: set[int] = set()
    for node in nodes:
        if isinstance(node, _Edit):
            step = timing.step(node.when)
            found |= {step} if step >= 1 else set()
            found |= _switch_steps(node.before or (), timing) | _switch_steps(node.after, timing)
        elif isinstance(node, _Alternation):
            found |= set(range(1, timing.steps + 1))
            for option in node.options:
                found |= _switch_steps(option, timing)
    return found


def _text(nodes: tuple[_Node, ...], step: int, timing: _Timing) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, _Edit):
            shown = node.before or () if step <= timing.step(node.when) else node.after
            parts.append(_text(shown, step, timing))
        else:
            parts.append(_text(node.options[(step - 1) % len(node.options)], step, timing))
    return "".join(parts)


def text_at_step(schedule: list[ScheduledPrompt], step: int) -> str:
    """The text for `step`: the first entry that has not ended, and the first entry past the last end.

    The WebUI counts `step` from 0, one per denoiser call, so entry (5, "cat") of a 10-step
    `[cat:dog:0.5]` conditions calls 0-5, six steps; its second-order samplers take a schedule of
    twice the steps for that reason.
    """
    for entry in schedule:
        if step <= entry.end_at_step:
            return entry.text
    return schedule[0].text


# ---- composable prompts (`AND`) ------------------------------------------------------------------

_AND = re.compile(r"\bAND\b")
# A part ends with an optional `:weight`; the text keeps its leading but not its trailing whitespace.
_PART = re.compile(r"(.*?)(?:\s*:\s*([+-]?(?:\d+\.?\d*|\.\d+)))?\s*", re.S)


def split_and(prompt: str) -> list[SubPrompt]:
    """`a :1.2 AND b` -> [("a", 1.2), (" b", 1.0)]; a prompt without `AND` is one part.

    As in the WebUI, a prompt that ends with `:number` outside any bracket (`red hair:1.2`) is one
    part of that weight: the number scales the part's guidance rather than being text.
    """
    parts = []
    for part in _AND.split(prompt):
        match = _PART.fullmatch(part)
        assert match is not None  # the pattern matches every string
        text, weight = match.group(1), match.group(2)
        parts.append(SubPrompt(text, float(weight) if weight is not None else 1.0))
    return parts


def composable_schedule(
    prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[ComposablePart]:
    """The positive prompt as the WebUI reads it: split at `AND` first, then each part scheduled."""
    return [
        ComposablePart(part.weight, prompt_schedule(part.text, steps, hires_steps, use_old_scheduling))
        for part in split_and(prompt)
    ]
