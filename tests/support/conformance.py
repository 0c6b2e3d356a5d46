"""The published exchange docs' examples as test fixtures, and what a client of such a doc relies on.

Each file in tests/e2e/fixtures/conformance/ holds one document's example requests and documented responses,
copied verbatim, with the document named in its `source`. `replay` sends an example to a local server with its
placeholders (session token, step-up token, the key's reference) substituted at run time; the `assert_*`
helpers check what the document promises: the status, each documented field with its documented type, and the
documented values that do not differ from key to key.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import requests

from keygate_client import RequestsAuth, ServerClock
from tests.support.local_server import HTTP_TIMEOUT_SECONDS, AppUser, LocalServer

FIXTURES = Path(__file__).resolve().parents[1] / "e2e" / "fixtures" / "conformance"
_FROM_EXAMPLE = object()


@cache
def load_doc(name: str) -> dict[str, Any]:
    """The fixture of one document (gaiaex, zdex): checked to name its source."""
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    assert doc["source"]["title"] and doc["source"]["seed"] in doc["source"]["cite"], doc["source"]
    return doc


def _is_iso8601_utc(value: Any) -> bool:
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        return datetime.fromisoformat(value).utcoffset() == UTC.utcoffset(None)
    except ValueError:
        return False


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "true": lambda value: value is True,
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "string[]": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "object[]": lambda value: isinstance(value, list) and all(isinstance(item, dict) for item in value),
    "iso8601": _is_iso8601_utc,
    "ip": lambda value: isinstance(value, str) and _is_ip(value),
    "null": lambda value: value is None,
}


def has_type(value: Any, documented: str) -> bool:
    """Whether `value` has the fixture's type (`T|null` allows null)."""
    return any(TYPES[alternative](value) for alternative in documented.split("|"))


def assert_fields(body: Any, fields: Mapping[str, str]) -> None:
    """Every documented field is there with its documented type (KeyGate's extra fields may sit beside them)."""
    assert isinstance(body, dict), body
    missing = sorted(set(fields) - set(body))
    assert missing == [], f"documented fields missing: {missing} in {body}"
    wrong = {name: (documented, body[name]) for name, documented in fields.items()
             if not has_type(body[name], documented)}
    assert wrong == {}, f"documented fields with another type: {wrong}"


def assert_documented_response(response: requests.Response, example: Mapping[str, Any]) -> dict[str, Any]:
    """The example's documented status (any 2xx where the doc shows none), fields and types, in items too;
    returns the body."""
    documented = example["response"]
    if documented["status"] is None:
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
    else:
        assert response.status_code == documented["status"], (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert_fields(body, documented["fields"])
    for name, item_fields in documented.get("item_fields", {}).items():
        for item in body[name]:
            assert_fields(item, item_fields)
    return body


def assert_documented_values(actual: Mapping[str, Any], shown: Mapping[str, Any], run_time: list[str]) -> None:
    """Each value the doc's example shows is what the service answered, but for those that differ from key to
    key (`run_time_values`: ids, secrets, timestamps) and lists of items (checked item by item)."""
    expected = {name: value for name, value in shown.items() if name not in run_time
                and not (isinstance(value, list) and any(isinstance(item, dict) for item in value))}
    answered = {name: actual.get(name) for name in expected}
    assert answered == expected, f"documented values differ: answered {answered}, documented {expected}"


def documented_timestamps(body: Mapping[str, Any], example: Mapping[str, Any]) -> list[str]:
    """The values of an answer's documented timestamp fields (in items too), where not null."""
    documented = example["response"]
    found = [body[name] for name, kind in documented["fields"].items() if kind.startswith("iso8601")]
    for list_name, item_fields in documented.get("item_fields", {}).items():
        found += [item[name] for item in body[list_name] for name, kind in item_fields.items()
                  if kind.startswith("iso8601")]
    return [value for value in found if value is not None]


def _substitute(text: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def replay(app: AppUser, doc: Mapping[str, Any], name: str, *, key: str | None = None, body: Any = _FROM_EXAMPLE,
           query: Mapping[str, str] | None = None, without: tuple[str, ...] = (),
           headers: Mapping[str, str] | None = None) -> requests.Response:
    """Send the doc's example request `name` as it is written, its placeholders filled in at run time: the
    app's session token, a fresh step-up token for the example's action, and `key` for the key's reference.

    `body` replaces the example's body (a documented variation); `without` leaves headers out and `headers`
    sets some to other values (the error cases).
    """
    example = doc["examples"][name]
    request = example["request"]
    values: dict[str, str] = {}
    step_up_placeholder = None
    for placeholder, meaning in doc["placeholders"].items():
        if meaning["kind"] == "session":
            values[placeholder] = app.session
        elif meaning["kind"] == "step_up" and "step_up_action" in example:
            step_up_placeholder = placeholder  # filled below: the token confirms this very request
        elif meaning["kind"] == "key" and key is not None:
            values[placeholder] = key
    path = _substitute(request["path"], values)
    sent = request["body"] if body is _FROM_EXAMPLE else body
    needs_step_up = step_up_placeholder is not None and "X-PASSKEY-TOKEN" not in (headers or {}) and not any(
        step_up_placeholder in value for header, value in request["headers"].items() if header in without)
    if needs_step_up and step_up_placeholder is not None:
        values[step_up_placeholder] = app.step_up(example["step_up_action"], method=request["method"], path=path,
                                                  body=sent)
    sent_headers = {header: _substitute(value, values) for header, value in request["headers"].items()
                    if header not in without}
    sent_headers.update(headers or {})
    assert not any(placeholder in path or placeholder in str(sent_headers) for placeholder in doc["placeholders"]), \
        (path, sent_headers)
    return requests.request(request["method"], app.server.base_url + path, headers=sent_headers, params=query,
                            data=None if sent is None else json.dumps(sent), timeout=HTTP_TIMEOUT_SECONDS)


def use_key(server: LocalServer, api_key: str, secret: str) -> requests.Response:
    """A bot's signed call with the key (KG1, the client SDK, its clock synced to the server's): what it may do."""
    auth = RequestsAuth(api_key, secret, clock=ServerClock.sync(server.base_url))
    return requests.get(server.base_url + "/v1/trade/api-keys/self", auth=auth, timeout=HTTP_TIMEOUT_SECONDS)
