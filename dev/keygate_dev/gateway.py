"""In-process stand-in for API Gateway's REST proxy integration.

Routes come from template.yaml's Api events; a literal path segment wins over
a `{variable}` as in API Gateway. `invoke` builds the Lambda proxy event the
way API Gateway does (headers, multi-value query, path parameters, source IP
in requestContext.identity, the authorizer's context) and calls the handler.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from keygate_dev import template


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function_id: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        wanted, given = self.path.strip("/").split("/"), path.strip("/").split("/")
        if len(wanted) != len(given):
            return None
        parameters = {}
        for pattern, segment in zip(wanted, given, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segment:
                    return None
                parameters[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return parameters

    @property
    def literal_segments(self) -> int:
        return sum(not part.startswith("{") for part in self.path.split("/"))


def routes() -> list[Route]:
    return [Route(method, path, function_id) for method, path, function_id in template.api_routes()]


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    matches = [(route, params) for route in routes() if (params := route.match(method, path)) is not None]
    if not matches:
        return None
    return max(matches, key=lambda match: match[0].literal_segments)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ProxyRequest:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    source_ip: str = "203.0.113.10"
    stage: str = "dev"


def proxy_event(request: ProxyRequest, route: Route, path_parameters: dict[str, str],
                authorizer: dict[str, str] | None) -> dict[str, Any]:
    pairs = parse_qsl(request.query, keep_blank_values=True)
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    multi_headers: dict[str, list[str]] = {name: [value] for name, value in request.headers.items()}
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": dict(request.headers) or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": f"/{request.stage}{request.path}",
            "stage": request.stage,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": request.source_ip},
            "authorizer": authorizer,
        },
        "body": request.body,
        "isBase64Encoded": False,
    }


def authorizer_event(request: ProxyRequest, route: Route, path_parameters: dict[str, str], *,
                     account: str = "123456789012", api_id: str = "k3yg4t3abc") -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway (REST) sends before it invokes `route`: the proxy
    event's request fields without the body (an authorizer never sees it), the type and the method ARN.
    Like API Gateway, path parameters stay as sent (percent-encoded) and the query is decoded."""
    event = proxy_event(request, route, path_parameters, authorizer=None)
    del event["body"], event["isBase64Encoded"], event["requestContext"]["authorizer"]
    method_arn = f"arn:aws:execute-api:us-east-1:{account}:{api_id}/{request.stage}/{request.method}{request.path}"
    return {"type": "REQUEST", "methodArn": method_arn, **event}


def invoke(request: ProxyRequest, authorizer: dict[str, str] | None, context: Any = None) -> Response:
    """Route and run one request through its Lambda handler in this process."""
    resolved = resolve(request.method, request.path)
    if resolved is None:
        body = {"error": {"code": "NOT_FOUND", "message": "No such route."}}
        return Response(404, {"Content-Type": "application/json"}, json.dumps(body))
    route, parameters = resolved
    handler = template.load_handler(route.function_id)
    result = handler(proxy_event(request, route, parameters, authorizer), context or LambdaContext(route.function_id))
    return Response(int(result["statusCode"]), dict(result.get("headers") or {}), result.get("body") or "")


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context object."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000
