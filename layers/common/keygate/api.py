"""API Gateway (REST, Lambda proxy) events in, JSON responses out.

The one place where typed errors become HTTP: every failure leaves in the
DESIGN.md shape `{"error": {"code", "message"}}`; AWS faults are 503 with
Retry-After; an unexpected bug is logged and answered 500 in the same shape,
never a bare 500 and never with internals.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError

import kg1 as signing
from keygate.errors import InvalidRequest, KeyGateError, PayloadTooLarge, ServiceUnavailable, Unauthorized
from keygate.keys import SECRET_PREFIX
from keygate.observability import logger, metrics, tracer

MAX_BODY_BYTES = 16 * 1024
# Validation messages echo parts of the request: bounded, and never a pasted secret.
_MAX_PROBLEMS = 5
_MAX_ECHO_CHARS = 120
_SECRET_SHAPED = re.compile(re.escape(SECRET_PREFIX) + r"[0-9A-Za-z]*")
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


@dataclass(frozen=True)
class ApiRequest:
    user_id: str
    path_parameters: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None
    source_ip: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class SignedRequest:
    """What the signature authorizer needs from API Gateway's REQUEST event."""

    method: str
    path: str  # decoded, relative to the API root
    query_pairs: list[tuple[str, str]]  # decoded, repeats kept
    headers: Mapping[str, str]  # as sent; names are looked up case-insensitively
    source_ip: str  # requestContext.identity.sourceIp, never a header
    duplicated_headers: frozenset[str] = frozenset()  # lower-case names sent more than once


def parse_event(event: dict[str, Any]) -> ApiRequest:
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    user_id = authorizer.get("user_id") or authorizer.get("principalId")
    if not isinstance(user_id, str) or not user_id:
        raise Unauthorized("A session is required.")
    body = raw_body(event)
    return ApiRequest(
        user_id=user_id,
        path_parameters={k: v for k, v in (event.get("pathParameters") or {}).items() if v is not None},
        query={k: v for k, v in (event.get("queryStringParameters") or {}).items() if v is not None},
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items() if isinstance(v, str)},
        body=body,
        source_ip=(context.get("identity") or {}).get("sourceIp") or "unknown",
    )


def raw_body(event: dict[str, Any]) -> bytes | None:
    """The body's bytes as the client sent them (base64-decoded when API Gateway encoded it)."""
    text: str | None = event.get("body")
    if text is None:
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidRequest("The request body is not valid base64.") from error
    return text.encode("utf-8", errors="surrogatepass")


def parse_body[ModelT: BaseModel](request: ApiRequest, model: type[ModelT], *,
                                  empty_means: dict[str, Any] | None = None) -> ModelT:
    """Decode and validate a JSON object body; every failure is a 4xx with a readable message."""
    # Size first: a body of nothing but whitespace is still a body too large.
    if request.body is not None and len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes.")
    if request.body is None or not request.body.strip():
        if empty_means is None:
            raise InvalidRequest("A JSON object body is required.")
        data: Any = empty_means
    else:
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidRequest("The request body is not valid JSON.", code="MALFORMED_JSON") from error
        except RecursionError:
            raise InvalidRequest("The request body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error)) from None


def query_int(request: ApiRequest, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise InvalidRequest(f"{name} must be an integer from {minimum} to {maximum}.")
    return int(raw)


def describe_validation_error(error: ValidationError) -> str:
    """Readable problems, at most a few, each bounded; request values they echo (a field name,
    a rejected entry) are cut short and never carry anything shaped like a secret."""
    problems = []
    details = error.errors(include_url=False, include_input=False)
    for detail in details[:_MAX_PROBLEMS]:
        location = ".".join(str(part) for part in detail["loc"]) or "body"
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "is not a known field"
        problems.append(f"{_echo_safe(location)}: {_echo_safe(message)}")
    if len(details) > _MAX_PROBLEMS:
        problems.append(f"and {len(details) - _MAX_PROBLEMS} more problems")
    return "; ".join(problems)


def _echo_safe(text: str) -> str:
    text = _SECRET_SHAPED.sub(SECRET_PREFIX + "[redacted]", text)
    return text if len(text) <= _MAX_ECHO_CHARS else text[:_MAX_ECHO_CHARS] + "..."


def json_response(status: int, payload: BaseModel | dict[str, Any],
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})}, "body": body}


def error_response(error: KeyGateError) -> dict[str, Any]:
    headers = {}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return json_response(error.status, {"error": {"code": error.code, "message": error.message}}, headers)


def api_handler(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Wrap a route handler: observability, and typed errors mapped to HTTP in one place."""

    @functools.wraps(handler)
    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return handler(event)
        except KeyGateError as error:
            logger.info("request refused", extra={"status": error.status, "error_code": error.code})
            return error_response(error)
        except Exception:  # noqa: BLE001  # the one boundary: logged, answered with the error shape
            logger.exception("unhandled error")
            return json_response(500, {"error": {"code": "INTERNAL_ERROR",
                                                  "message": "An unexpected error occurred; it has been logged."}})

    observed = tracer.capture_lambda_handler(wrapped, capture_response=False)
    observed = logger.inject_lambda_context(observed, log_event=False, clear_state=True)
    return metrics.log_metrics(observed)


# ---------------------------------------------------------- Lambda authorizers
def allow_policy(principal_id: str, method_arn: str, context: dict[str, str], *,
                 whole_api: bool) -> dict[str, Any]:
    """An authorizer's Allow for this request's method ARN, or for every route of
    the stage when API Gateway may cache the result for other routes."""
    resource = method_arn
    if whole_api:
        # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*
        prefix, _, rest = method_arn.partition(":execute-api:")
        api_and_stage = "/".join(rest.split("/")[:2])
        resource = f"{prefix}:execute-api:{api_and_stage}/*"
    return {
        "principalId": principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}]},
        "context": context,
    }


class AuthorizerDenied(Exception):
    """Raised with the message 'Unauthorized', which API Gateway turns into a 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def deny_policy(principal_id: str, method_arn: str, context: dict[str, str]) -> dict[str, Any]:
    """A Deny for this request: API Gateway answers 403 (ACCESS_DENIED), whose Gateway
    Response reads `error_code` / `error_message` from this context."""
    return {
        "principalId": principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": method_arn}]},
        "context": context,
    }


def request_path(event: dict[str, Any]) -> str:
    """The decoded path relative to the API root (no stage, no base-path mapping).

    Rebuilt segment by segment from the matched resource and its path
    parameters, which API Gateway gives the same way whatever custom domain
    mapping is in front. A REST API passes path parameters as sent
    (percent-encoded), so each one is decoded here.
    """
    context = event.get("requestContext") or {}
    resource = context.get("resourcePath") or event.get("resource")
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


def signed_request(event: dict[str, Any]) -> SignedRequest:
    """The parts of a REQUEST authorizer event that SIGNING.md's checks read."""
    values_per_name: dict[str, int] = {}
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if isinstance(name, str) and isinstance(values, list):
            values_per_name[name.lower()] = values_per_name.get(name.lower(), 0) + len(values)
    multi_query = event.get("multiValueQueryStringParameters") or {}
    if multi_query:
        pairs = [(name, value) for name, values in multi_query.items() for value in (values or [])
                 if isinstance(value, str)]
    else:
        pairs = [(name, value) for name, value in (event.get("queryStringParameters") or {}).items()
                 if isinstance(value, str)]
    context = event.get("requestContext") or {}
    return SignedRequest(
        method=str(event.get("httpMethod") or context.get("httpMethod") or "").upper(),
        path=request_path(event),
        query_pairs=pairs,
        headers=event.get("headers") or {},
        source_ip=(context.get("identity") or {}).get("sourceIp") or "",
        duplicated_headers=frozenset(name for name, count in values_per_name.items() if count > 1),
    )


def verified_body(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """For a backend behind the signature authorizer: act only on the body that was signed.

    The authorizer never sees the body, so the backend compares SHA-256 of the
    raw body with X-KG-CONTENT-SHA256 (constant time) and answers 401
    BODY_DIGEST_MISMATCH when the header is missing or differs. Place it
    inside `api_handler`, which maps the refusal to the error shape.
    """

    @functools.wraps(handler)
    def wrapped(event: dict[str, Any]) -> dict[str, Any]:
        sent = [value for name, value in (event.get("headers") or {}).items()
                if isinstance(name, str) and name.lower() == signing.HEADER_CONTENT_SHA256.lower()]
        if len(sent) != 1 or not signing.body_matches(raw_body(event), sent[0]):
            raise Unauthorized("The body does not match X-KG-CONTENT-SHA256: sign the exact bytes you send.",
                               code="BODY_DIGEST_MISMATCH")
        return handler(event)

    return wrapped
