"""API Gateway's request id ties a refusal to its log lines: management logs carry it as the correlation id."""

from __future__ import annotations

import json

from keygate.service import KeyLifecycle
from keygate_dev import template
from keygate_dev.lambda_runner import LambdaContext
from tests.support.apigw_events import ProxyRequest, proxy_event, resource_parameters
from tests.support.client import Response
from tests.support.errors import assert_error
from tests.support.stack import onboard

REQUEST_ID = "c0ffee00-1111-4222-8333-444455556666"


def _event(user: str, resource: str = "/v1/trade/api-keys", path: str = "/v1/trade/api-keys", query: str = "") -> dict:
    event = proxy_event(ProxyRequest("GET", path, query), resource, resource_parameters(resource, path),
                        {"principalId": user, "user_id": user})
    event["requestContext"]["requestId"] = REQUEST_ID
    return event


def _logged(captured_logs) -> list[dict]:
    return [json.loads(line) for line in captured_logs.lines() if line.startswith("{")]


def test_every_log_line_of_a_request_carries_api_gateways_request_id(aws, captured_logs):
    # Given a request API Gateway gave an id, which the route refuses (an out-of-range limit)
    onboard("alice")
    handler = template.load_handler("GetApiKeyAuditFunction")
    # When the route serves it
    event = _event("alice", "/v1/trade/api-keys/{api_key}/audit", "/v1/trade/api-keys/kgk_x/audit", "limit=0")
    result = handler(event, LambdaContext("audit"))
    # Then it was refused, and each line it logged (the refusal's among them) names that id as its correlation id
    assert result["statusCode"] == 400
    lines = _logged(captured_logs)
    assert any(line["message"] == "request refused" for line in lines), lines
    assert all(line.get("correlation_id") == REQUEST_ID for line in lines), lines


def test_an_unexpected_error_quotes_the_request_id_that_finds_its_log_line(aws, captured_logs, monkeypatch):
    # Given a bug in the service
    def broken(*args, **kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(KeyLifecycle, "list_api_keys", broken)
    handler = template.load_handler("ListApiKeysFunction")
    # When a request meets it
    result = handler(_event("alice"), LambdaContext("ListApiKeysFunction"))
    # Then the answer is a 500 in the error shape that quotes the request id, and nothing internal ...
    error = assert_error(Response(result["statusCode"], result["headers"], result["body"]), 500, "INTERNAL_ERROR")
    assert REQUEST_ID in error["message"] and "internal detail" not in result["body"]
    # ... and the logged error is found under that id
    assert any(line["message"] == "unhandled error" and line.get("correlation_id") == REQUEST_ID
               for line in _logged(captured_logs))
