"""Stage 3 of the ESD gateway: JSON-schema (draft 4 subset) body validation with the fge messages.

ESD clients match substrings of these messages (esd-api.md §1.6), so the wording is exact.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: _is_integer(v),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _is_integer(value: Any) -> bool:
    # Draft 4 (and fge, which types by the JSON token): an integer is written without fraction or
    # exponent, so `1.0`, `1e400` and `Infinity` are numbers, and `true` is a boolean.
    return isinstance(value, int) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    """The JSON-schema primitive type name of a decoded JSON value, as fge reports it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _quote(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def validate(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every schema violation of `instance`, each as an fge message; empty when valid."""
    errors: list[str] = []
    _check(instance, schema, errors)
    return errors


def _check(value: Any, schema: dict[str, Any], errors: list[str]) -> None:
    allowed = schema.get("type")
    if allowed is not None:
        allowed = [allowed] if isinstance(allowed, str) else allowed
        if not any(_TYPE_CHECKS[name](value) for name in allowed):
            names = sorted(set(allowed) | ({"integer"} if "number" in allowed else set()))
            errors.append(
                f"instance type ({json_type(value)}) does not match any allowed primitive type "
                f"(allowed: {_quote(names)})"
            )
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"instance value ({_quote(value)}) not found in enum (possible values: {_quote(schema['enum'])})")
    if isinstance(value, str):
        _check_string(value, schema, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, errors)
    elif isinstance(value, list):
        _check_array(value, schema, errors)
    elif isinstance(value, dict):
        _check_object(value, schema, errors)


def _check_string(value: str, schema: dict[str, Any], errors: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            f"string {_quote(value)} is too short (length: {len(value)}, required minimum: {schema['minLength']})"
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(
            f"string {_quote(value)} is too long (length: {len(value)}, maximum allowed: {schema['maxLength']})"
        )
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"ECMA 262 regex {_quote(schema['pattern'])} does not match input string {_quote(value)}")


def _check_number(value: float, schema: dict[str, Any], errors: list[str]) -> None:
    # float() of a 400-digit integer overflows: integers are shown as they are.
    shown = int(value) if isinstance(value, float) and value.is_integer() else value
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(
            f"numeric instance is lower than the required minimum (minimum: {schema['minimum']}, found: {shown})"
        )
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(
            f"numeric instance is greater than the required maximum (maximum: {schema['maximum']}, found: {shown})"
        )


def _check_array(value: list[Any], schema: dict[str, Any], errors: list[str]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(
            f"array is too short: must have at least {schema['minItems']} elements "
            f"but instance has {len(value)} elements"
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(
            f"array is too long: must have at most {schema['maxItems']} elements but instance has {len(value)} elements"
        )
    if "items" in schema:
        for item in value:
            _check(item, schema["items"], errors)


def _check_object(value: dict[str, Any], schema: dict[str, Any], errors: list[str]) -> None:
    missing = sorted(name for name in schema.get("required", []) if name not in value)
    if missing:
        errors.append(f"object has missing required properties ({_quote(missing)})")
    properties = schema.get("properties", {})
    for name, subschema in properties.items():
        if name in value:
            _check(value[name], subschema, errors)
    others = schema.get("additionalProperties")
    if isinstance(others, dict):
        for name, item in value.items():
            if name not in properties:
                _check(item, others, errors)


# Small builders so route schemas read like the ESD models they restate.
def string(min_length: int | None = 1, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", **extra}
    if min_length is not None:
        schema["minLength"] = min_length
    return schema


def array(items: dict[str, Any], min_items: int | None = None, max_items: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or []}
