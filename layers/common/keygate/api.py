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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from keygate.errors import InvalidRequest, KeyGateError, PayloadTooLarge, ServiceUnavailable, Unauthorized
from keygate.observability import logger, metrics, tracer

MAX_BODY_BYTES = 16 * 1024
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
ModelT = TypeVar("ModelT", bound=BaseModel)


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
    query_pairs: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-case names
    source_ip: str
    duplicated_headers: frozenset[str] = frozenset()


def parse_event(event: dict[str, Any]) -> ApiRequest:
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    user_id = authorizer.get("user_id") or authorizer.get("principalId")
    if not isinstance(user_id, str) or not user_id:
        raise Unauthorized("A session is required.")
    raw_body = event.get("body")
    body: bytes | None = None
    if raw_body is not None:
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw_body, validate=True)
            except (binascii.Error, ValueError) as error:
                raise InvalidRequest("The request body is not valid base64.") from error
        else:
            body = raw_body.encode("utf-8", errors="surrogatepass")
    return ApiRequest(
        user_id=user_id,
        path_parameters={k: v for k, v in (event.get("pathParameters") or {}).items() if v is not None},
        query={k: v for k, v in (event.get("queryStringParameters") or {}).items() if v is not None},
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items() if isinstance(v, str)},
        body=body,
        source_ip=(context.get("identity") or {}).get("sourceIp") or "unknown",
    )


def parse_body(request: ApiRequest, model: type[ModelT], *, context: dict[str, Any] | None = None,
               empty_means: dict[str, Any] | None = None) -> ModelT:
    """Decode and validate a JSON object body; every failure is a 4xx with a readable message."""
    if request.body is None or not request.body.strip():
        if empty_means is None:
            raise InvalidRequest("A JSON object body is required.")
        data: Any = empty_means
    else:
        if len(request.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes.")
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidRequest("The request body is not valid JSON.", code="MALFORMED_JSON") from error
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data, context=context)
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
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in detail["loc"]) or "body"
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "is not a known field"
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


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
        except Exception:
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

    Rebuilt from the matched resource and its decoded path parameters, which
    API Gateway gives the same way whatever custom domain mapping is in front.
    """
    context = event.get("requestContext") or {}
    resource = context.get("resourcePath") or event.get("resource")
    parameters = event.get("pathParameters") or {}
    if not resource:
        return event.get("path") or "/"
    path = resource
    for name, value in parameters.items():
        path = path.replace("{" + name + "+}", value).replace("{" + name + "}", value)
    return path


def signed_request(event: dict[str, Any]) -> SignedRequest:
    """The parts of a REQUEST authorizer event that SIGNING.md's checks read."""
    multi_headers = event.get("multiValueHeaders") or {}
    duplicated = frozenset(name.lower() for name, values in multi_headers.items()
                           if isinstance(values, list) and len(values) > 1)
    multi_query = event.get("multiValueQueryStringParameters") or {}
    single_query = event.get("queryStringParameters") or {}
    pairs = [(name, value) for name, values in multi_query.items() for value in (values or [])] if multi_query \
        else [(name, value) for name, value in single_query.items() if value is not None]
    context = event.get("requestContext") or {}
    return SignedRequest(
        method=(event.get("httpMethod") or context.get("httpMethod") or "").upper(),
        path=request_path(event),
        query_pairs=pairs,
        headers={name.lower(): value for name, value in (event.get("headers") or {}).items()
                 if isinstance(value, str)},
        source_ip=(context.get("identity") or {}).get("sourceIp") or "",
        duplicated_headers=duplicated,
    )
