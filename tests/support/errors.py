"""The error shape every refusal has, KeyGate's own and API Gateway's: {"error": {"code", "message"}}, with
`"ok": false` beside `"error"` in the uniform shape the Gateway Responses move to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class _Answer(Protocol):
    status: int
    headers: Mapping[str, str]

    def json(self) -> Any: ...


def error_of(body: Any) -> dict[str, str]:
    """The `{"code", "message"}` of an error body, once it is checked to have exactly that shape, both filled."""
    assert isinstance(body, dict) and set(body) in ({"error"}, {"ok", "error"}), body
    assert body.get("ok", False) is False, body
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    return body["error"]


def assert_error(response: _Answer, status: int, code: str | None = None) -> dict[str, str]:
    """A refusal with this status (and code), in the error shape; a 503 also says when to retry."""
    assert response.status == status, getattr(response, "body", response)
    error = error_of(response.json())
    if code is not None:
        assert error["code"] == code, error
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0
    return error
