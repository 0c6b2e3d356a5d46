"""API Gateway's (REST) events in, and what it expects back: proxy responses and authorizer policies.

Standard library only: the signature authorizer reads its REQUEST events here
(docs/architecture.md, "Cold start"). How each kind of refusal reaches the
caller, as API Gateway decides it, is in docs/architecture.md ("Errors").
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from keygate.errors import ErrorCode, KeyGateError, ServiceUnavailable

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


# ------------------------------------------------------------ proxy events
def raw_body(event: Mapping[str, Any]) -> bytes | None:
    """The body's bytes as the client sent them (base64-decoded when API Gateway encoded it)."""
    text: str | None = event.get("body")
    if text is None:
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as error:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "The request body is not valid base64.") from error
    return text.encode("utf-8", errors="surrogatepass")


def request_id(event: Mapping[str, Any]) -> str | None:
    """API Gateway's id of the request (what its Gateway Responses quote as $context.requestId)."""
    value = (event.get("requestContext") or {}).get("requestId")
    return value if isinstance(value, str) else None


def source_ip(event: Mapping[str, Any]) -> str:
    """The connection's address as API Gateway saw it; never a header such as X-Forwarded-For."""
    return ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp") or ""


def json_response(status: int, body: str | Mapping[str, Any],
                  headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})}, "body": text}


def error_body(code: str, message: str) -> dict[str, Any]:
    """Every refusal's body: GaiaEx's error object, with ZDEX's `ok: false` beside it (docs/product.md)."""
    return {"ok": False, "error": {"code": code, "message": message}}


def error_response(error: KeyGateError) -> dict[str, Any]:
    headers = {}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return json_response(error.status, error_body(error.code.value, error.message), headers)


# ------------------------------------------------------ authorizer events
@dataclass(frozen=True)
class SignedRequest:
    """What the signature authorizer needs from API Gateway's REQUEST event."""

    method: str
    path: str  # decoded, relative to the API root
    query_pairs: list[tuple[str, str]]  # decoded, repeats kept
    headers: Mapping[str, str]  # as sent; names are looked up case-insensitively
    source_ip: str  # requestContext.identity.sourceIp, never a header
    duplicated_headers: frozenset[str] = frozenset()  # lower-case names sent more than once
    resource: str | None = None  # the resource template API Gateway matched (e.g. /v1/misc/{proxy+})


def request_path(event: Mapping[str, Any]) -> str:
    """The decoded path relative to the API root (no stage, no base-path mapping).

    Rebuilt segment by segment from the matched resource and its path
    parameters, which API Gateway gives the same way whatever custom domain
    mapping is in front. A REST API passes path parameters as sent
    (percent-encoded), so each one is decoded here.
    """
    resource = matched_resource(event)
    if not resource:
        return unquote(event.get("path") or "/")
    parameters = event.get("pathParameters") or {}
    segments = []
    for segment in resource.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            value = parameters.get(segment[1:-1].removesuffix("+"))
            if not isinstance(value, str):
                return unquote(event.get("path") or "/")
            segment = unquote(value)
        segments.append(segment)
    return "/".join(segments)


def query_pairs(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (name, value) of the query, decoded, repeated names kept in the order sent."""
    multi_query = event.get("multiValueQueryStringParameters") or {}
    if multi_query:
        return [(name, value) for name, values in multi_query.items() for value in (values or [])
                if isinstance(value, str)]
    return [(name, value) for name, value in (event.get("queryStringParameters") or {}).items()
            if isinstance(value, str)]


def query_values(event: Mapping[str, Any], name: str) -> list[str]:
    """Every value of one query parameter, in the order sent ([] when absent). A signature covers the
    values of a repeated name sorted, not their order (docs/signing.md, "The canonical query"), so a
    backend reads all of them, never `queryStringParameters`, which keeps only the last."""
    return [value for pair_name, value in query_pairs(event) if pair_name == name]


def signed_request(event: Mapping[str, Any]) -> SignedRequest:
    """The parts of a REQUEST authorizer event that the signing checks read (docs/signing.md)."""
    values_per_name: dict[str, int] = {}
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if isinstance(name, str) and isinstance(values, list):
            values_per_name[name.lower()] = values_per_name.get(name.lower(), 0) + len(values)
    pairs = query_pairs(event)
    context = event.get("requestContext") or {}
    return SignedRequest(
        method=str(event.get("httpMethod") or context.get("httpMethod") or "").upper(),
        path=request_path(event),
        query_pairs=pairs,
        headers=event.get("headers") or {},
        source_ip=source_ip(event),
        duplicated_headers=frozenset(name for name, count in values_per_name.items() if count > 1),
        resource=matched_resource(event),
    )


def matched_resource(event: Mapping[str, Any]) -> str | None:
    """The resource template API Gateway matched (requestContext.resourcePath, or the event's `resource`)."""
    value = (event.get("requestContext") or {}).get("resourcePath") or event.get("resource")
    return value if isinstance(value, str) and value else None


def allow_policy(principal_id: str, method_arn: str, context: Mapping[str, str], *,
                 whole_api: bool) -> dict[str, Any]:
    """An authorizer's Allow for this request's method ARN, or for every route of
    the stage when API Gateway may cache the result for other routes."""
    resource = _stage_wide(method_arn) if whole_api else method_arn
    return _policy(principal_id, "Allow", resource, context)


def deny_policy(principal_id: str, method_arn: str, context: Mapping[str, str], *,
                whole_api: bool = False) -> dict[str, Any]:
    """A Deny for this request (or, when API Gateway may cache it for other routes, for every route of the
    stage): API Gateway answers ACCESS_DENIED, whose Gateway Response reads `error_code` / `error_message`
    from this context. Every authorizer refusal is one; nothing is refused by raising."""
    return _policy(principal_id, "Deny", _stage_wide(method_arn) if whole_api else method_arn, context)


def _stage_wide(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*
    prefix, _, rest = method_arn.partition(":execute-api:")
    api_and_stage = "/".join(rest.split("/")[:2])
    return f"{prefix}:execute-api:{api_and_stage}/*"


def _policy(principal_id: str, effect: str, resource: str, context: Mapping[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
        "context": dict(context),
    }

