"""keygate.storage.attribute_values against boto3's TypeSerializer and TypeDeserializer, which it replaces so
that no function imports boto3 (docs/architecture.md, "Cold start"): the same value, or the same kind of
error, for every input, but for the differences its docstring names."""

import decimal
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from keygate.records import ApiKeyRecord, Credential, KeyStatus
from keygate.storage import attribute_values, layout

BOTO3_SERIALIZER, BOTO3_DESERIALIZER = TypeSerializer(), TypeDeserializer()

# Numbers as DynamoDB takes them, and some it refuses (too many digits, exponent out of range)
NUMBERS = st.one_of(st.integers(-(10**40), 10**40), st.decimals(allow_nan=False, allow_infinity=False, places=None))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20), st.binary(max_size=10))
SETS = st.one_of(st.frozensets(st.text(max_size=5), max_size=4), st.sets(st.integers(-1000, 1000), max_size=4),
                 st.sets(st.binary(max_size=5), max_size=4), st.sets(st.one_of(st.text(max_size=3), st.integers()),
                                                                  max_size=3))
VALUES = st.recursive(st.one_of(SCALARS, SETS),
                      lambda children: st.one_of(st.lists(children, max_size=4),
                                                 st.lists(children, max_size=3).map(tuple),
                                                 st.dictionaries(st.text(max_size=8), children, max_size=4)),
                      max_leaves=12)


def _outcome(function, value: Any) -> tuple[str, Any]:
    """What a conversion answers: its result, or the type of the error it raises."""
    try:
        return "value", function(value)
    except (TypeError, decimal.DecimalException) as error:
        return type(error).__name__, None


def _same_sets_as_lists(value: Any) -> Any:
    """A set's entries come in the set's iteration order: compared as a sorted list. (A map's attribute
    value is a dict, never a list, so a map key named "SS" is not taken for a set.)"""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in {"SS", "NS", "BS"} and isinstance(next(iter(value.values())),
                                                                                        list):
            return {kind: sorted(entries) for kind, entries in value.items()}
        return {name: _same_sets_as_lists(entry) for name, entry in value.items()}
    if isinstance(value, list):
        return [_same_sets_as_lists(entry) for entry in value]
    return value


@given(VALUES)
def test_serialize_answers_what_boto3_answers_for_any_value(value):
    # Given any value KeyGate could hand DynamoDB, including ones boto3 refuses
    # When both serialize it
    ours, theirs = _outcome(attribute_values.serialize, value), _outcome(BOTO3_SERIALIZER.serialize, value)
    # Then they produce the same attribute value, or fail with the same error
    assert ours[0] == theirs[0]
    assert _same_sets_as_lists(ours[1]) == _same_sets_as_lists(theirs[1])


@given(VALUES)
def test_deserialize_answers_what_boto3_answers_for_every_attribute_value(value):
    # Given the attribute value of any value boto3 serializes
    try:
        attribute_value = BOTO3_SERIALIZER.serialize(value)
    except (TypeError, decimal.DecimalException):
        return
    # When both read it back
    ours, theirs = attribute_values.deserialize(attribute_value), BOTO3_DESERIALIZER.deserialize(attribute_value)
    # Then the values are equal, of the same types (a binary is bytes here, boto3's Binary wrapper there)
    assert ours == theirs
    assert _types(ours) == _types(theirs)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _types(entry) for name, entry in value.items()}
    if isinstance(value, list):
        return [_types(entry) for entry in value]
    if isinstance(value, (set, frozenset)):
        return sorted({_types(entry) for entry in value})
    return "bytes" if type(value).__name__ in {"bytes", "Binary"} else type(value).__name__


@pytest.mark.parametrize("value", [1.5, float("nan"), {1.5}, [Decimal("NaN")], Decimal("Infinity"), object(),
                                   {"a", 1}, Decimal("1" * 39), Decimal("1e200"), Decimal("1e-200")])
def test_what_dynamodb_cannot_store_is_refused_as_boto3_refuses_it(value):
    # Given a float, NaN, infinity, a mixed set, an unsupported type or a number out of DynamoDB's range
    # When both serialize it, then both refuse it with the same error
    ours, theirs = _outcome(attribute_values.serialize, value), _outcome(BOTO3_SERIALIZER.serialize, value)
    assert ours[0] != "value"
    assert ours == theirs


@pytest.mark.parametrize("value", [Decimal("-Infinity"), Decimal("sNaN"), Decimal("-NaN"), {Decimal("-Infinity")}])
def test_every_number_dynamodb_refuses_is_refused_where_boto3_passes_some_on(value):
    # Given a non-finite number that boto3 serializes (only NaN and Infinity are refused there), which DynamoDB
    # refuses anyway
    # When it is serialized, then it is refused before any request is sent
    with pytest.raises(TypeError, match="Infinity and NaN not supported"):
        attribute_values.serialize(value)


def test_an_unsupported_value_is_not_quoted_in_the_error():
    # Given a value of a type DynamoDB cannot store, whose text could be anything a caller held
    class Held:
        def __str__(self) -> str:
            return "kgs_not_to_be_repeated"
    # When it is serialized, then the error names its type only
    with pytest.raises(TypeError) as refused:
        attribute_values.serialize({"field": Held()})
    assert "Held" in str(refused.value) and "kgs_not_to_be_repeated" not in str(refused.value)


@pytest.mark.parametrize("attribute_value", [{}, {"X": "1"}, {"N": "1" * 39}, {"N": "1e200"}, {"N": "1e-200"}])
def test_an_attribute_value_that_is_not_dynamodbs_is_refused_as_boto3_refuses_it(attribute_value):
    # When both read an empty, unknown or malformed attribute value, then both refuse it with the same error
    ours = _outcome(attribute_values.deserialize, attribute_value)
    theirs = _outcome(BOTO3_DESERIALIZER.deserialize, attribute_value)
    assert ours[0] != "value"
    assert ours == theirs


def test_every_item_keygate_writes_is_the_item_boto3_would_write_and_reads_back_the_same():
    # Given a key record with every field set, as layout stores it (with the grace of a rotation) and a nonce
    from datetime import UTC, datetime, timedelta
    now = datetime(2026, 11, 27, tzinfo=UTC)
    record = ApiKeyRecord(key_id="kgk_x", user_id="alice", label="bot", permissions=["read", "trade"],
                          ip_whitelist=["192.0.2.1"], status=KeyStatus.ACTIVE, created_at=now,
                          expires_at=now + timedelta(days=1), last_used_at=now, version=3, handle="h",
                          change_id="c", secret_version="v2",
                          grace=Credential(valid_until=now + timedelta(hours=1), secret_version="v1"))
    values = layout.from_item(layout.record_item(record))
    # When layout writes it and reads it back, then it writes exactly what boto3's serializer would ...
    assert layout.record_item(record) == {name: BOTO3_SERIALIZER.serialize(value) for name, value in values.items()}
    assert layout.nonce_item("kgk_x", "n1", 1_795_000_000_123, "w0") == {
        **layout.nonce_key("kgk_x", "n1"), "expires_at_ms": {"N": "1795000000123"}, "expires_ttl": {"N": "1795000001"},
        "writer": {"S": "w0"}}
    assert layout.nonce_writer(layout.nonce_item("kgk_x", "n1", 1, "w0")) == "w0"
    assert layout.nonce_writer(None) is None and layout.nonce_writer(layout.nonce_key("kgk_x", "n1")) is None
    # ... and reads back the record it wrote
    assert layout.record_from(values) == record
