"""KeyGate's route handlers: a typed request in, a JSON response out, every error in one shape.

`route_handler(route, composition)` wraps a function's handler: it parses API
Gateway's proxy event once (the caller, path and query parameters, the body
validated by the route's model), checks the passkey step-up the route
declares, calls the handler with that `Request` and the function's
composition root, and maps whatever it raises to HTTP in one place: a
`KeyGateError` to its code's status in the DESIGN error shape, an AWS fault to
503 with Retry-After, an unexpected bug to a JSON 500 that quotes the request
id and reveals nothing else (never a bare 500).

`verified_body` is for backends behind the signature authorizer.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ValidationError

import kg1
from keygate import apigw
from keygate.errors import ErrorCode, KeyGateError
from keygate.keys import SECRET_PREFIX
from keygate.observability import logger, metrics, tracer
from keygate.records import now_utc
from keygate.routing import Auth, Presentation, Route, Target
from keygate.service import KeyRef
from keygate.stepup import HEADER as STEP_UP_HEADER
from keygate.stepup import Action, StepUpUse

if TYPE_CHECKING:
    from keygate.binding import RequestedChange

MAX_BODY_BYTES = 16 * 1024
# The most digits an integer taken from a query string may have (leading zeros included).
MAX_INTEGER_DIGITS = 9
# Validation messages echo parts of the request: bounded, and never a pasted secret.
_MAX_PROBLEMS = 5
_MAX_ECHO_CHARS = 120
_SECRET_SHAPED = re.compile(re.escape(SECRET_PREFIX) + r"[0-9A-Za-z]*")


@dataclass(frozen=True)
class Request:
    """One API request, as the handler of its route sees it."""

    route: Route
    user_id: str  # the session's or the signing key's user ("" on a route without auth)
    path_parameters: Mapping[str, str]
    query: Mapping[str, int]  # the route's declared query parameters, validated (defaults filled in)
    headers: Mapping[str, str]  # names in lower case
    source_ip: str
    authorizer: Mapping[str, str]  # the authorizer's context (a bot route: user_id, key_id, permissions)
    body: Any  # the route's request model, validated; None for a route without one
    step_up: StepUpUse | None  # the verified passkey confirmation of a mutation
    request_id: str | None  # API Gateway's, as its Gateway Responses and our logs quote it

    def path(self, name: str) -> str:
        return self.path_parameters.get(name, "")

    @property
    def key(self) -> KeyRef:
        """The caller's key the route's path names (by id or by handle)."""
        if self.route.target is None:
            raise TypeError(f"{self.route.operation_id} names no key in its path")
        name, target = self.route.target
        value = self.path(name)
        return KeyRef(key_id=value) if target is Target.KEY_ID else KeyRef(handle=value)


class Composition(Protocol):
    """What `route_handler` needs from a function's composition root (keygate.wiring)."""

    def verify_step_up(self, token: str | None, *, user_id: str, action: Action, now: datetime,
                       change: RequestedChange | None = None, target: tuple[Target, str] | None = None
                       ) -> StepUpUse | None: ...

    def validation_context(self) -> Mapping[str, Any]: ...

    def presentation(self) -> Presentation: ...


# ------------------------------------------------------------------- parsing
def parse_body(model: type[BaseModel], body: bytes | None, *, empty_means: Mapping[str, Any] | None = None,
               context: Mapping[str, Any] | None = None) -> BaseModel:
    """Decode and validate a JSON object body; every failure is a 4xx with a readable message."""
    # Size first: a body of nothing but whitespace is still a body too large.
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise KeyGateError(ErrorCode.PAYLOAD_TOO_LARGE, f"The request body must be at most {MAX_BODY_BYTES} bytes.")
    if body is None or not body.strip():
        if empty_means is None:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "A JSON object body is required.")
        data: Any = dict(empty_means)
    else:
        try:
            data = json.loads(body.decode("utf-8"), parse_int=_integer)
        except (UnicodeDecodeError, ValueError) as error:
            raise KeyGateError(ErrorCode.MALFORMED_JSON, "The request body is not valid JSON.") from error
        except RecursionError:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "The request body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise KeyGateError(ErrorCode.INVALID_REQUEST, "The request body must be a JSON object.")
    try:
        return model.model_validate(data, context=dict(context or {}))
    except ValidationError as error:
        raise KeyGateError(ErrorCode.INVALID_REQUEST, describe_validation_error(error)) from None


def _integer(digits: str) -> int | float:
    """A JSON integer; one too long for Python to convert (over 4,300 digits) is valid JSON but no value any field
    takes, so it becomes an infinity, which the model refuses naming its field."""
    try:
        return int(digits)
    except ValueError:
        return -math.inf if digits.startswith("-") else math.inf


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
        # (a rule's own message often starts with the field's name: "label must be ...")
        named = message.startswith((location + " ", location + ":"))
        problems.append(_echo_safe(message) if named else f"{_echo_safe(location)}: {_echo_safe(message)}")
    if len(details) > _MAX_PROBLEMS:
        problems.append(f"and {len(details) - _MAX_PROBLEMS} more problems")
    return "; ".join(problems)


def _echo_safe(text: str) -> str:
    text = _SECRET_SHAPED.sub(SECRET_PREFIX + "[redacted]", text)
    return text if len(text) <= _MAX_ECHO_CHARS else text[:_MAX_ECHO_CHARS] + "..."


def _query(route: Route, given: Mapping[str, str]) -> dict[str, int]:
    parsed = {}
    for parameter in route.query:
        raw = given.get(parameter.name)
        if raw is None or raw == "":
            parsed[parameter.name] = parameter.default
            continue
        # The length first: int() refuses more than 4,300 digits with a ValueError (a 500), and
        # converts long inputs in quadratic time.
        if len(raw) > MAX_INTEGER_DIGITS or not raw.isascii() or not raw.isdigit() \
                or not parameter.minimum <= int(raw) <= parameter.maximum:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, f"{parameter.name} must be an integer from "
                                                          f"{parameter.minimum} to {parameter.maximum}.")
        parsed[parameter.name] = int(raw)
    return parsed


def _strings(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    return {name: value for name, value in (mapping or {}).items() if isinstance(value, str)}


def parse_request(route: Route, event: Mapping[str, Any], composition: Composition | None) -> Request:
    """The typed request, in the order its checks answer: caller (401), body (4xx), step-up (403)."""
    authorizer = _strings((event.get("requestContext") or {}).get("authorizer"))
    user_id = authorizer.get("user_id") or authorizer.get("principalId") or ""
    if route.auth is Auth.IAM:  # API Gateway verified the SigV4 signature: the caller is the IAM principal
        user_id = _strings((event.get("requestContext") or {}).get("identity")).get("userArn") or ""
    if route.auth is not Auth.NONE and not user_id:
        raise KeyGateError(ErrorCode.UNAUTHORIZED, "A session is required.")
    headers = {name.lower(): value for name, value in _strings(event.get("headers")).items()}
    body = None
    if route.request_model is not None:
        body = parse_body(route.request_model, apigw.raw_body(event), empty_means=route.empty_body_means,
                          context=composition.validation_context() if composition is not None else None)
    step_up = None
    path_parameters = _strings(event.get("pathParameters"))
    if route.step_up is not None and not route.step_up_in_handler:
        if composition is None:
            raise TypeError(f"{route.function_id} needs a composition root to verify step-up tokens")
        from keygate.binding import requested_change

        # The token must confirm this very request: its target and the digest of its change (keygate.binding).
        domain = body.domain() if body is not None and hasattr(body, "domain") else None
        target = None if route.target is None else (route.target[1], path_parameters.get(route.target[0], ""))
        step_up = composition.verify_step_up(headers.get(STEP_UP_HEADER.lower()), user_id=user_id,
                                             action=route.step_up, now=now_utc(),
                                             change=requested_change(route.step_up, domain), target=target)
    return Request(route=route, user_id=user_id, path_parameters=path_parameters,
                   query=_query(route, _strings(event.get("queryStringParameters"))), headers=headers,
                   source_ip=apigw.source_ip(event) or "unknown", authorizer=authorizer, body=body,
                   step_up=step_up, request_id=apigw.request_id(event))


# ----------------------------------------------------------------- handlers
def _unexpected(request_id: str | None) -> dict[str, Any]:
    where = f" under request id {request_id}" if request_id else ""
    return apigw.error_response(KeyGateError(ErrorCode.INTERNAL_ERROR,
                                             f"An unexpected error occurred; it has been logged{where}."))


LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _route_of(routes: tuple[Route, ...], event: Mapping[str, Any]) -> Route:
    """The route (of those a function serves) API Gateway matched for this event."""
    if len(routes) == 1:
        return routes[0]
    matched = ((event.get("requestContext") or {}).get("resourcePath") or event.get("resource"),
               str(event.get("httpMethod") or "").upper())
    for route in routes:
        if (route.path, route.method) == matched:
            return route
    raise LookupError(f"no route of this function matches {matched}")


def route_handler[CompositionT: Composition](
        *routes: Route, composition: Callable[[], CompositionT] | None = None,
) -> Callable[[Callable[..., Any]], LambdaHandler]:
    """Turn `handler(request[, composition])` into the Lambda handler of a function serving `routes`
    (the same operation in each wire profile).

    `composition` builds the function's composition root (its config and ports) on first use. The
    handler returns the domain's result, which the matched route presents as its response model, or
    the response model itself; it is answered with the route's success status.
    """

    def decorate(handler: Callable[..., Any]) -> LambdaHandler:
        @functools.wraps(handler)
        def serve(event: dict[str, Any]) -> dict[str, Any]:
            route = _route_of(routes, event)
            built = composition() if composition is not None else None
            request = parse_request(route, event, built)
            result = handler(request, built) if built is not None else handler(request)
            if route.present is not None:
                if built is None:
                    raise TypeError(f"{route.operation_id} presents a domain result: give it a composition root")
                result = route.present(result, built.presentation())
            return apigw.json_response(route.success_status, result.model_dump_json(by_alias=True))

        lambda_handler = api_handler(serve)
        lambda_handler.routes = routes  # type: ignore[attr-defined]  # the routes it serves, for the template check
        return lambda_handler

    return decorate


def api_handler(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> LambdaHandler:
    """The one boundary of every API handler (a backend's own too): observability, with API Gateway's
    request id as the logs' correlation id, and any error answered in KeyGate's error shape."""

    @functools.wraps(handler)
    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return handler(event)
        except KeyGateError as error:
            logger.info("request refused", extra={"status": error.status, "error_code": error.code.value})
            return apigw.error_response(error)
        except Exception:  # noqa: BLE001  # the one boundary: logged, answered with the error shape
            logger.exception("unhandled error")
            return _unexpected(apigw.request_id(event))

    observed = tracer.capture_lambda_handler(wrapped, capture_response=False)
    observed = logger.inject_lambda_context(observed, log_event=False, clear_state=True,
                                            correlation_id_path=correlation_paths.API_GATEWAY_REST)
    return metrics.log_metrics(observed)


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
                if isinstance(name, str) and name.lower() == kg1.HEADER_CONTENT_SHA256.lower()]
        if len(sent) != 1 or not kg1.body_matches(apigw.raw_body(event), sent[0]):
            raise KeyGateError(ErrorCode.BODY_DIGEST_MISMATCH,
                               "The body does not match X-KG-CONTENT-SHA256: sign the exact bytes you send.")
        return handler(event)

    return wrapped


def single_query_value(event: dict[str, Any], name: str) -> str | None:
    """For a backend behind the signature authorizer: the one value of a query parameter (None when
    absent), or 400 INVALID_REQUEST when it is repeated, since the signature does not fix which of
    several values comes first (docs/signing.md, "The canonical query")."""
    values = apigw.query_values(event, name)
    if len(values) > 1:
        raise KeyGateError(ErrorCode.INVALID_REQUEST,
                           f"The query parameter {name} is given {len(values)} times: send it once.")
    return values[0] if values else None
