"""examples/protected-api: a downstream API behind KeyGate's exported authorizer, verifying the signed body."""

import base64
import json

import pytest

from keygate_dev import template
from tests.support.apigw_events import ProxyRequest, proxy_event
from tests.support.bots import BOT_IP, Outcome
from tests.support.client import Response, call_handler
from tests.support.errors import assert_error
from tests.support.stack import STAGE

ORDER = b'{"symbol":"BTC-USDT","side":"buy","qty":"0.5"}'


def place_order(headers: dict[str, str], body: bytes, allowed: Outcome, *, base64_encoded: bool = False) -> Response:
    """What API Gateway does after the authorizer's Allow: the proxy event, with its context, to the backend."""
    text = base64.b64encode(body).decode() if base64_encoded else body.decode()
    event = proxy_event(ProxyRequest("POST", "/v1/trade/orders", headers=headers, body=text, source_ip=BOT_IP,
                                     stage=STAGE), "/v1/trade/orders", {}, allowed.gateway_authorizer())
    event["isBase64Encoded"] = base64_encoded
    return call_handler("PlaceOrderFunction", event, template.EXAMPLE_TEMPLATE_PATH)


def signed_order(gate, key, body=ORDER):
    headers = gate.headers(key, "POST", "/v1/trade/orders", body=body)
    return headers, gate.invoke(gate.event("POST", "/v1/trade/orders", "", headers))


def test_a_trade_key_places_an_order_and_the_backend_sees_the_caller(gate):
    # Given a trade key and a signed order
    key = gate.create_key(permissions=["read", "trade"])
    headers, allowed = signed_order(gate, key)
    assert allowed.status == 200
    # When the backend receives it with the authorizer's context
    response = place_order(headers, ORDER, allowed)
    # Then it acted on the verified order for the authorized caller
    assert response.status == 200, response.body
    assert response.json() == {
        "caller": {"user_id": "alice", "api_key": key[0], "permissions": ["read", "trade"]},
        "order": {"symbol": "BTC-USDT", "side": "buy", "qty": "0.5"}, "status": "accepted"}


def test_a_body_swapped_after_signing_is_refused_by_the_backend(gate):
    # Given a signed order whose body is replaced on the way (the authorizer never sees bodies)
    key = gate.create_key(permissions=["read", "trade"])
    headers, allowed = signed_order(gate, key)
    assert allowed.status == 200
    swapped = ORDER.replace(b"0.5", b"50")
    # Then the backend answers 401 in the error shape before acting
    assert_error(place_order(headers, swapped, allowed), 401, "BODY_DIGEST_MISMATCH")


@pytest.mark.parametrize("change", [
    pytest.param(lambda headers: headers.pop("X-KG-CONTENT-SHA256"), id="missing"),
    pytest.param(lambda headers: headers.update({"X-KG-CONTENT-SHA256": ""}), id="empty"),
    pytest.param(lambda headers: headers.update({"X-KG-CONTENT-SHA256": "Z" * 64}), id="not-hex"),
])
def test_a_missing_or_malformed_digest_header_is_refused_by_the_backend(gate, change):
    key = gate.create_key(permissions=["read", "trade"])
    headers, allowed = signed_order(gate, key)
    change(headers)
    assert_error(place_order(headers, ORDER, allowed), 401, "BODY_DIGEST_MISMATCH")


def test_a_base64_encoded_body_is_verified_on_its_decoded_bytes(gate):
    key = gate.create_key(permissions=["read", "trade"])
    headers, allowed = signed_order(gate, key)
    assert place_order(headers, ORDER, allowed, base64_encoded=True).status == 200


def test_an_invalid_order_with_a_valid_digest_is_a_400(gate):
    key = gate.create_key(permissions=["read", "trade"])
    body = json.dumps({"symbol": "BTC-USDT", "side": "hold", "qty": "-1"}).encode()
    headers, allowed = signed_order(gate, key, body)
    assert_error(place_order(headers, body, allowed), 400, "INVALID_REQUEST")


def test_a_read_only_key_never_reaches_the_backend(gate):
    key = gate.create_key(permissions=["read"])
    _, denied = signed_order(gate, key)
    assert denied.status == 401 and denied.context["error_code"] == "PERMISSION_DENIED"
