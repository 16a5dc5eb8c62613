"""The X/Y/Z plot's value syntax: CSV lists with quoting, integer ranges `1-5`, `1-5 (+2)`, `1-10 [5]` and
float ranges `0.5-1.5 (+0.25)`, `0-1 [3]`, expanded as the WebUI's xyz_grid does."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from openesd.errors import PayloadError

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:.\d*)?"  # the WebUI's pattern: any character may stand for the decimal point
_STEP_INT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(([+-]\d+)\s*\))?\s*")
_COUNT_INT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\[(\d+)\s*\])?\s*")
_STEP_FLOAT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*")
_COUNT_FLOAT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\[(\d+(?:.\d*)?)\s*\])?\s*")


def split_csv(text: str) -> list[str]:
    """One CSV record (commas, double-quote quoting; several lines are one list), each value stripped."""
    return [value.strip() for row in csv.reader(io.StringIO(text)) for value in row]


def join_csv(values: list[str]) -> str:
    """The inverse, as the WebUI writes a dropdown's values into the infotext's `X Values`."""
    with io.StringIO() as out:
        csv.writer(out).writerow(values)
        return out.getvalue().strip()


def _number(text: str) -> str:
    return text.replace(" ", "")


def expand_ints(values: list[str]) -> list[Any]:
    """`a-b` is a..b inclusive, `a-b (+s)` steps by s, `a-b [n]` is n evenly spaced integers; others as they are."""
    import numpy as np

    out: list[Any] = []
    for value in values:
        if not value.strip():
            continue
        step, count = _STEP_INT.fullmatch(value), _COUNT_INT.fullmatch(value)
        if step is not None:
            start, end = int(_number(step.group(1))), int(_number(step.group(2)))
            out += list(range(start, end + 1, int(step.group(3)) if step.group(3) else 1))
        elif count is not None:
            start, end = int(_number(count.group(1))), int(_number(count.group(2)))
            num = int(count.group(3)) if count.group(3) else 1
            out += [int(x) for x in np.linspace(start, end, num).tolist()]
        else:
            out.append(value)
    return out


def expand_floats(values: list[str]) -> list[Any]:
    """`a-b (+s)` is numpy's arange(a, b + s, s) (s defaults to 1), `a-b [n]` linspace(a, b, n); others as they are."""
    import numpy as np

    out: list[Any] = []
    for value in values:
        if not value.strip():
            continue
        step, count = _STEP_FLOAT.fullmatch(value), _COUNT_FLOAT.fullmatch(value)
        if step is not None:
            start, end = float(_number(step.group(1))), float(_number(step.group(2)))
            size = float(step.group(3)) if step.group(3) else 1.0
            out += np.arange(start, end + size, size).tolist()
        elif count is not None:
            start, end = float(_number(count.group(1))), float(_number(count.group(2)))
            num = int(float(count.group(3))) if count.group(3) else 1
            out += np.linspace(start, end, num).tolist()
        else:
            out.append(value)
    return out


def convert(values: list[Any], kind: type, axis: str) -> list[Any]:
    """Each value as the axis' type; a value that is not one fails naming the axis and the value."""
    converted = []
    for value in values:
        try:
            converted.append(kind(_number(value) if isinstance(value, str) and kind is not str else value))
        except (TypeError, ValueError):
            raise PayloadError(
                f"X/Y/Z plot: {axis} value {value!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
    return converted
