"""DynamoDB's typed attribute values ({"S": "text"}, {"N": "12"}, ...) to Python values and back.

The same conversions as boto3.dynamodb.types' TypeSerializer and TypeDeserializer, in the standard library
(docs/architecture.md, "Cold start"). tests/unit/test_attribute_values.py holds both functions to boto3's,
value for value and error for error, but for these: every non-finite number is refused (boto3 passes
-Infinity and signalling or negative NaNs on, for DynamoDB to refuse); an error names a value's type, never
the value; a binary reads back as bytes (boto3 wraps it in its Binary, which is not accepted here); type
tags are DynamoDB's, upper case.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's numbers: 38 significant digits, exponents -128..126, and nothing ever rounded (boto3's context).
NUMBER_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])
_BINARY = (bytes, bytearray)


def serialize(value: Any) -> dict[str, Any]:
    """None, bool, int or Decimal, str, bytes, a set of one of those, a list or tuple, a mapping; never a float."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, _BINARY):
        return {"B": value}
    if isinstance(value, Set):
        if all(map(_is_number, value)):  # an empty set too, as boto3 does (DynamoDB refuses it)
            return {"NS": [_number(number) for number in value]}
        if all(isinstance(entry, str) for entry in value):
            return {"SS": list(value)}
        if all(isinstance(entry, _BINARY) for entry in value):
            return {"BS": list(value)}
    elif isinstance(value, Mapping):
        return {"M": {name: serialize(entry) for name, entry in value.items()}}
    elif isinstance(value, (list, tuple)):
        return {"L": [serialize(entry) for entry in value]}
    raise TypeError(f'Unsupported type "{type(value)}"')


def deserialize(value: Mapping[str, Any]) -> Any:
    """The Python value of an attribute value: numbers as Decimal, binaries as bytes, sets as sets."""
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind = next(iter(value))
    data = value[kind]
    if kind in ("S", "BOOL", "B"):
        return data
    if kind == "N":
        return NUMBER_CONTEXT.create_decimal(data)
    if kind == "M":
        return {name: deserialize(entry) for name, entry in data.items()}
    if kind == "L":
        return [deserialize(entry) for entry in data]
    if kind == "NULL":
        return None
    if kind in ("SS", "BS"):
        return set(data)
    if kind == "NS":
        return set(map(NUMBER_CONTEXT.create_decimal, data))
    raise TypeError(f"Dynamodb type {kind} is not supported")


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, (int, Decimal))


def _number(value: int | Decimal) -> str:
    number = NUMBER_CONTEXT.create_decimal(value)
    if not number.is_finite():
        raise TypeError("Infinity and NaN not supported")
    return str(number)
