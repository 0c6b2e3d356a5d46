"""Trading bots as the signature authorizer meets them, and its answer as API Gateway reads it.

A `Bot` signs requests the way the SDK does (keygate_client.Signer, over the
URL of an API Gateway stage) and hands them over as API Gateway's REQUEST
authorizer event; `Gate` runs the deployed authorizer's handler on such events
and reads its answer as API Gateway does (`Outcome`). The authorizer's unit
tests, its integration tests (the `gate` fixture, tests/integration/conftest.py)
and its benchmark (benchmarks/authorizer_bench.py) all build requests here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keygate_client
from keygate import apigw
from keygate_dev import template
from keygate_dev.lambda_runner import LambdaContext
from tests.support.apigw_events import ProxyRequest, authorizer_event, resource_parameters
from tests.support.clocks import Clocks
from tests.support.stack import STAGE, onboard

if TYPE_CHECKING:
    from keygate_dev.local_api import LocalResponse
    from tests.support.client import ApiClient

BOT_IP = "203.0.113.10"
SELF = "/v1/trade/api-keys/self"
CATCH_ALL = "/{proxy+}"  # a downstream API's catch-all route
AUTHORIZER_FUNCTION = "SignatureAuthorizerFunction"


def stage_url(stage: str) -> str:
    """The invoke URL of an API Gateway stage (what a bot is configured with)."""
    return f"https://k3yg4t3abc.execute-api.us-east-1.amazonaws.com/{stage}"


def request_event(method: str, path: str, query: str, headers: dict[str, str], *, source_ip: str = BOT_IP,
                  stage: str = "prod", resource: str = CATCH_ALL) -> dict[str, Any]:
    """API Gateway's REQUEST authorizer event for a request that matched `resource` (path parameters as sent)."""
    return authorizer_event(ProxyRequest(method, path, query, headers, None, source_ip, stage), resource,
                            resource_parameters(resource, path))


@dataclass
class Bot:
    """A bot holding one key, signing with the SDK on the wall clock of `clocks`, for the API's `stage`:
    an HMAC-SHA256 key's secret, or (secret None) an Ed25519 key's `private_key`."""

    key_id: str
    secret: str | None
    clocks: Clocks
    stage: str = "prod"
    private_key: Any = None

    def headers(self, method: str = "GET", path: str = SELF, query: str = "", body: bytes = b"",
                **sdk: Any) -> dict[str, str]:
        """The six X-KG-* headers the SDK sends; `sdk` are keygate_client.Signer's options (`clock` too)."""
        clock: Callable[[], int] = sdk.pop("clock", self.clocks.wall_clock_ms)
        url = stage_url(self.stage) + path + (f"?{query}" if query else "")
        return keygate_client.Signer(self.key_id, self.secret, private_key=self.private_key, clock=clock,
                                     **sdk).headers_for(method, url, body)

    def event(self, method: str = "GET", path: str = SELF, query: str = "", body: bytes = b"", *,
              source_ip: str = BOT_IP, resource: str = CATCH_ALL, extra_headers: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, **sdk: Any) -> dict[str, Any]:
        """The REQUEST event of a request signed now (or carrying `headers` as given), plus `extra_headers`."""
        sent = headers if headers is not None else self.headers(method, path, query, body, **sdk)
        return request_event(method, path, query, {**sent, **(extra_headers or {})}, source_ip=source_ip,
                             stage=self.stage, resource=resource)

    def request(self, *args: Any, **kwargs: Any) -> apigw.SignedRequest:
        """What the authorizer reads from `event(...)`."""
        return apigw.signed_request(self.event(*args, **kwargs))


@dataclass
class Outcome:
    """What API Gateway makes of a REQUEST authorizer's answer: an Allow is 200, a Deny the ACCESS_DENIED
    Gateway Response (401, rendering the code and message of the Deny's context), any error the
    AUTHORIZER_CONFIGURATION_ERROR Gateway Response (503)."""

    status: int
    policy: dict[str, Any] | None = None
    error: BaseException | None = None

    @property
    def context(self) -> dict[str, str]:
        return (self.policy or {}).get("context") or {}

    @property
    def denied(self) -> bool:
        return self.policy is not None and self.status != 200

    def gateway_authorizer(self) -> dict[str, str]:
        """requestContext.authorizer as the backend receives it after an Allow."""
        assert self.status == 200 and self.policy is not None, self
        return {"principalId": self.policy["principalId"], **self.context}


def authorizer_failure() -> dict[str, Any]:
    """What API Gateway answers when the authorizer fails (raises anything: AuthorizerConfigurationException),
    as deployed."""
    return template.gateway_responses()["AUTHORIZER_CONFIGURATION_ERROR"]


def access_denied_status() -> int:
    """The status of the ACCESS_DENIED Gateway Response, which answers every authorizer Deny, as deployed."""
    return int(template.gateway_responses()["ACCESS_DENIED"]["StatusCode"])


def outcome_of(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]) -> Outcome:
    """Invoke an authorizer's handler with `event` and read its answer as API Gateway does."""
    try:
        policy = handler(event, LambdaContext(AUTHORIZER_FUNCTION))
    except Exception as failure:  # noqa: BLE001 - API Gateway's AUTHORIZER_CONFIGURATION_ERROR
        return Outcome(int(authorizer_failure()["StatusCode"]), error=failure)
    effects = {statement["Effect"] for statement in policy["policyDocument"]["Statement"]}
    return Outcome(200 if effects == {"Allow"} else access_denied_status(), policy=policy)


@dataclass
class Gate:
    """The deployed signature authorizer (its handler as the template names it) in front of the local
    gateway's routes, with clocks the test moves; keys are created through the API."""

    client: ApiClient
    clocks: Clocks
    handler: Any
    stage: str = STAGE

    def create_key(self, user: str = "alice", **fields: Any) -> tuple[str, str]:
        onboard(user)
        created = self.client.create(user, **fields)
        assert created.status == 200, created.body
        return created.json()["api_key"], created.json()["api_secret"]

    def bot(self, key: tuple[str, str]) -> Bot:
        return Bot(*key, self.clocks, self.stage)

    def headers(self, key: tuple[str, str], method: str, path: str, query: str = "", body: bytes = b"",
                **sdk: Any) -> dict[str, str]:
        return self.bot(key).headers(method, path, query, body, **sdk)

    def event(self, method: str, path: str, query: str, headers: dict[str, str],
              source_ip: str = BOT_IP) -> dict[str, Any]:
        # A route of KeyGate's API or of the protected example, else one of a downstream API at that very path.
        resource = self.client.gateway.resource_of(method, path) or path
        return request_event(method, path, query, headers, source_ip=source_ip, stage=self.stage, resource=resource)

    def invoke(self, event: dict[str, Any]) -> Outcome:
        return outcome_of(self.handler, event)

    def via_gateway(self, key: tuple[str, str], method: str = "GET", path: str = SELF, body: bytes = b"", *,
                    source_ip: str = BOT_IP, drop: str | None = None, change: dict[str, str] | None = None,
                    replay: bool = False, **sdk: Any) -> LocalResponse:
        """A signed request sent through the local API Gateway (routing, this authorizer, Gateway Responses),
        with one header dropped or changed after signing, or sent twice (`replay`: the second answer)."""
        headers = self.headers(key, method, path, "", body, **sdk)
        headers = {name: value for name, value in headers.items() if name != drop} | (change or {})
        if replay:
            self.client.gateway.request(method, path, headers=headers, body=body, source_ip=source_ip)
        return self.client.gateway.request(method, path, headers=headers, body=body, source_ip=source_ip)

    def send(self, key: tuple[str, str], method: str = "GET", path: str = SELF, query: str = "", body: bytes = b"",
             *, source_ip: str = BOT_IP, extra_headers: dict[str, str] | None = None, **sdk: Any) -> Outcome:
        headers = {**self.headers(key, method, path, query, body, **sdk), **(extra_headers or {})}
        return self.invoke(self.event(method, path, query, headers, source_ip))
