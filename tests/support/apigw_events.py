"""API Gateway's (REST) events, built the way it builds them, for tests that call a handler directly.

Requests that should go through routing, the authorizers and the Gateway
Responses use the local gateway instead (tests/support/client.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class ProxyRequest:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    source_ip: str = "203.0.113.10"
    stage: str = "dev"


def proxy_event(request: ProxyRequest, resource: str, path_parameters: dict[str, str],
                authorizer: dict[str, str] | None) -> dict[str, Any]:
    """The Lambda proxy event for `request`, matched to `resource` (the template's path with {parameters})."""
    pairs = parse_qsl(request.query, keep_blank_values=True)
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    multi_headers: dict[str, list[str]] = {name: [value] for name, value in request.headers.items()}
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": dict(request.headers) or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
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


def authorizer_event(request: ProxyRequest, resource: str, path_parameters: dict[str, str], *,
                     account: str = "123456789012", api_id: str = "k3yg4t3abc") -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway (REST) sends before it invokes the route: the proxy
    event's request fields without the body (an authorizer never sees it), the type and the method ARN.
    Like API Gateway, path parameters stay as sent (percent-encoded) and the query is decoded."""
    event = proxy_event(request, resource, path_parameters, authorizer=None)
    del event["body"], event["isBase64Encoded"], event["requestContext"]["authorizer"]
    method_arn = f"arn:aws:execute-api:us-east-1:{account}:{api_id}/{request.stage}/{request.method}{request.path}"
    return {"type": "REQUEST", "methodArn": method_arn, **event}


def resource_parameters(resource: str, path: str) -> dict[str, str]:
    """The path parameters `resource` (e.g. /v1/trade/api-keys/{api_key}) takes from `path`; a greedy last
    parameter (`/{proxy+}`) takes the rest of the path as sent, as API Gateway's does."""
    names = resource.strip("/").split("/")
    greedy = names[-1].endswith("+}")
    values = path.lstrip("/").split("/", len(names) - 1) if greedy else path.strip("/").split("/")
    if len(names) != len(values):
        raise ValueError(f"{path} does not match {resource}")
    return {name[1:-1].removesuffix("+"): value for name, value in zip(names, values, strict=True)
            if name.startswith("{")}
