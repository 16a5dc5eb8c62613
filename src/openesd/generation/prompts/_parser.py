"""A1111 prompt syntax (emphasis, `(text:1.3)`, escapes, `BREAK`, `<lora:...>`), parsed as the WebUI does."""

from __future__ import annotations

import re

from openesd.errors import PayloadError

ROUND = 1.1  # `(text)` multiplies by this, `[text]` divides by it
BREAK = "BREAK"  # a fragment with this text and weight -1 starts a new 75-token chunk

_ATTENTION = re.compile(
    r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|   # escapes
\(|\[|                        # openers
:\s*([+-]?[.\d]+)\s*\)|       # ':1.3)' closes a round bracket with an explicit weight
\)|]|                         # closers
[^\\()\[\]:]+|                # plain text
:                             # a colon that is not a weight
""",
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = ("lora", "lyco")  # the WebUI treats `lyco` as an alias of `lora`


def parse_attention(text: str) -> list[tuple[str, float]]:
    """Split `text` into (fragment, weight) runs; `BREAK` comes back as ("BREAK", -1.0)."""
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for item in res[start:]:
            item[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(res))
        elif token == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            multiply(round_open.pop(), _float(weight, text))
        elif token == ")" and round_open:
            multiply(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            multiply(square_open.pop(), 1 / ROUND)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i > 0:
                    res.append([BREAK, -1.0])
                res.append([part, 1.0])
    # Brackets left open apply to the end of the prompt, as in the WebUI.
    for start in round_open:
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, 1 / ROUND)
    return _merge_runs(res)


def _float(weight: str, text: str) -> float:
    try:
        return float(weight)
    except ValueError:
        raise PayloadError(f"prompt weight {weight!r} in {text!r} is not a number") from None


def _merge_runs(res: list[list]) -> list[tuple[str, float]]:
    """Join neighbours of equal weight ("(a)(b)" is one run); an empty prompt is one empty run."""
    if not res:
        return [("", 1.0)]
    merged = [res[0]]
    for text, weight in res[1:]:
        if merged[-1][1] == weight:
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    return [(text, weight) for text, weight in merged]


def extract_loras(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """Strip `<lora:name[:weight[:unet_weight]]>` tags; return the clean prompt and (name, weight) pairs."""
    loras: list[tuple[str, float]] = []

    def take(match: re.Match) -> str:
        kind, args = match.group(1), match.group(2)
        if kind.lower() not in LORA_KINDS:
            raise PayloadError(
                f"extra network <{kind}:{args}> in the prompt is not supported; supported: <lora:name:weight>"
            )
        loras.append(_lora_args(args, match.group(0)))
        return ""

    return _EXTRA_NETWORK.sub(take, prompt), loras


def _lora_args(args: str, tag: str) -> tuple[str, float]:
    """`name`, `name:w`, `name:te_w:unet_w`, `name:te=w` -> (name, the text-encoder / first weight)."""
    name, *rest = [part.strip() for part in args.split(":")]
    if not name:
        raise PayloadError(f"LoRA tag {tag!r} names no LoRA")
    positional = [part for part in rest if "=" not in part]
    named = dict(part.split("=", 1) for part in rest if "=" in part)
    raw = positional[0] if positional else named.get("te", named.get("unet", "1"))
    try:
        return name, float(raw)
    except ValueError:
        raise PayloadError(f"LoRA weight {raw!r} in {tag!r} is not a number") from None
