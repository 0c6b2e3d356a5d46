"""A backend reads every value of a repeated query name (issue 13, finding 8): the signature covers the
values sorted, so `?a=1&a=2` and `?a=2&a=1` are the same signed request (docs/signing.md)."""

from __future__ import annotations

import pytest

import kg1
from keygate import api, apigw
from keygate.errors import KeyGateError


def proxy_event(pairs: list[tuple[str, str]]) -> dict:
    """What API Gateway hands a REST proxy integration: every value per name, and the last one alone."""
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {"multiValueQueryStringParameters": multi or None,
            "queryStringParameters": {name: values[-1] for name, values in multi.items()} or None}


def test_two_orders_of_a_repeated_name_sign_alike_and_the_backend_sees_both_values():
    # Given the same name sent twice, in both orders
    first, second = [("a", "1"), ("a", "2")], [("a", "2"), ("a", "1")]
    # When each is canonicalised for signing, and read by a backend
    # Then they sign alike, and the backend receives every value in the order sent, not only the last
    assert kg1.canonical_query(first) == kg1.canonical_query(second)
    assert apigw.query_values(proxy_event(first), "a") == ["1", "2"]
    assert apigw.query_values(proxy_event(second), "a") == ["2", "1"]


def test_an_absent_name_has_no_values_and_other_names_are_not_mixed_in():
    event = proxy_event([("b", "x")])
    assert apigw.query_values(event, "a") == []
    assert apigw.query_values({}, "a") == []


def test_a_parameter_that_must_appear_once_is_refused_when_repeated():
    # Given a backend that takes one `amount`
    # When the request repeats it
    # Then it is a 400 that says to send it once
    with pytest.raises(KeyGateError) as refused:
        api.single_query_value(proxy_event([("amount", "1"), ("amount", "1000")]), "amount")
    assert refused.value.status == 400 and refused.value.code.value == "INVALID_REQUEST"
    assert "amount is given 2 times" in refused.value.message


@pytest.mark.parametrize(("pairs", "expected"), [([("amount", "5")], "5"), ([], None)])
def test_a_single_value_or_none_is_read_as_sent(pairs, expected):
    assert api.single_query_value(proxy_event(pairs), "amount") == expected
