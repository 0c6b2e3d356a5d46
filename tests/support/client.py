"""The app's and the tests' client of the KeyGate API: real HTTP semantics through the one local gateway.

Requests go through keygate_dev.local_api (SAM CLI's local API Gateway, the
same one `keygate dev serve` runs) in this process, without a socket: routing,
the session authorizer with a real session JWT, the handlers, and the
template's Gateway Responses for whatever API Gateway answers itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from keygate import routes
from keygate.routing import Target
from keygate.stepup import Action
from keygate_dev import template
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.lambda_runner import LambdaContext, SharedEnvironmentRunner, local_functions
from keygate_dev.local_api import KeyGateLocalApigwService, LocalApiDefinition, LocalResponse
from tests.support.apigw_events import ProxyRequest, proxy_event, resource_parameters
from tests.support.authenticator import SoftAuthenticator
from tests.support.stack import PASSKEY_ORIGIN, RESOURCE_NAMES

_TARGET_FIELDS = {Target.KEY_ID: "api_key", Target.HANDLE: "id", Target.PASSKEY: "passkey_id"}

Response = LocalResponse


@cache
def _definition(parameters: tuple[tuple[str, str], ...]) -> tuple[SharedEnvironmentRunner, LocalApiDefinition]:
    # Reading both templates through SAM CLI takes a moment: once per set of stack parameters.
    runner = SharedEnvironmentRunner(local_functions(dict(parameters), RESOURCE_NAMES, {}))
    return runner, LocalApiDefinition.load(runner, dict(parameters))


def local_gateway(parameters: Mapping[str, str]) -> KeyGateLocalApigwService:
    """A fresh local gateway (its own authorizer cache) for a stack with these parameters."""
    runner, definition = _definition(tuple(sorted(parameters.items())))
    service = KeyGateLocalApigwService(definition, runner, port=0, access_log=False)
    service.create()
    return service


@dataclass
class ApiClient:
    """Calls routes as the app does: a session JWT for `user`, a fresh step-up token on every mutation."""

    identity: LocalIdentityProvider
    gateway: KeyGateLocalApigwService
    source_ip: str = "203.0.113.10"
    # "external": step-up tokens minted by the local identity provider; "builtin": a real passkey ceremony
    # through the routes with each user's software authenticator (registered on first use).
    step_up_mode: str = "external"
    _sessions: dict[str, str] = field(default_factory=dict)
    # Wraps each automatic ceremony (tests/integration/test_least_privilege.py records the mutation alone).
    ceremony_guard: Callable[[], AbstractContextManager[Any]] = nullcontext
    authenticators: dict[str, SoftAuthenticator] = field(default_factory=dict)

    def session(self, user: str) -> str:
        # One token per user and client, as an app keeps its session (API Gateway caches its authorization).
        if user not in self._sessions:
            self._sessions[user] = self.identity.session_token(user)
        return self._sessions[user]

    def step_up(self, user: str, action: str, **claims: Any) -> str:
        return self.identity.step_up_token(user, action, **claims)

    # ------------------------------------------------------------ passkeys (the built-in step-up)
    def authenticator(self, user: str) -> SoftAuthenticator:
        return self.authenticators.setdefault(user, SoftAuthenticator(origin=PASSKEY_ORIGIN))

    def register_passkey(self, user: str = "alice", *, label: str = "phone", step_up: str | None = None,
                         device: SoftAuthenticator | None = None, **make: Any) -> Response:
        """Registration options, navigator.credentials.create() on the user's authenticator, then the
        registration (`make` makes the authenticator's answer wrong, as SoftAuthenticator.create takes)."""
        options = self.call("POST", "/v1/trade/passkeys/registration/options", user=user)
        assert options.status == 200, options.text
        credential = (device or self.authenticator(user)).create(options.json(), **make)
        headers = {"X-PASSKEY-TOKEN": step_up} if step_up else None
        return self.call("POST", "/v1/trade/passkeys", user=user, body={"credential": credential, "label": label},
                         headers=headers, step_up=None)

    def step_up_options(self, user: str, action: str, *, request: Any = None, profile: str = "gaiaex",
                        **target: str) -> Response:
        body = {"action": action, "profile": profile, "request": request if request is not None else {}, **target}
        return self.call("POST", "/v1/trade/step-up/options", user=user, body=body)

    def ceremony(self, user: str, action: str, *, request: Any = None, profile: str = "gaiaex",
                 device: SoftAuthenticator | None = None, **target: str) -> str:
        """A real step-up: options for this change, navigator.credentials.get(), the token (a passkey is
        registered first if the user has none)."""
        device = device or self.authenticator(user)
        if not device.credentials:
            registered = self.register_passkey(user, device=device)
            assert registered.status == 201, registered.text
        options = self.step_up_options(user, action, request=request, profile=profile, **target)
        assert options.status == 200, options.text
        answer = self.call("POST", "/v1/trade/step-up", user=user, body={"credential": device.get(options.json())})
        assert answer.status == 200, answer.text
        return str(answer.json()["step_up_token"])

    def _builtin_step_up(self, user: str, method: str, path: str, body: Any) -> str | None:
        resource = self.gateway.resource_of(method, path)
        [route] = [route for route in routes.ROUTES if (route.method, route.path) == (method, resource)]
        assert route.step_up is not None
        target = {}
        if route.target is not None:
            name, kind = route.target
            target[_TARGET_FIELDS[kind]] = resource_parameters(route.path, path)[name]
        profile = route.tag if route.tag in ("gaiaex", "zdex") else "gaiaex"
        try:
            with self.ceremony_guard():
                return self.ceremony(user, route.step_up.value, request=body if isinstance(body, dict) else {},
                                     profile=profile, **target)
        except AssertionError:
            return None  # a body or target the options refuse: the mutation answers for itself

    def step_up_action(self, method: str, path: str) -> Action | None:
        """The step-up action of the route the gateway would serve this request with."""
        resource = self.gateway.resource_of(method, path)
        declared = [route for route in routes.ROUTES if (route.method, route.path) == (method, resource)]
        return declared[0].step_up if declared else None

    def call(self, method: str, path: str, *, user: str | None = "alice", body: Any = None,
             raw_body: str | bytes | None = None, query: str = "", step_up: str | None = "auto",
             headers: Mapping[str, str] | None = None, source_ip: str | None = None) -> Response:
        """`user=None` sends no session; `step_up` is "auto" (a fresh token when the route needs one),
        None (none) or the token to send."""
        request_headers = {"Content-Type": "application/json", **(headers or {})}
        if user is not None:
            request_headers.setdefault("Authorization", f"Bearer {self.session(user)}")
        action = self.step_up_action(method, path)
        if step_up == "auto" and action and user and self.step_up_mode == "builtin":
            token = self._builtin_step_up(user, method, path, body)
            if token:
                request_headers["X-PASSKEY-TOKEN"] = token
        elif step_up == "auto" and action and user:
            request_headers["X-PASSKEY-TOKEN"] = self.step_up(user, action.value)
        elif step_up not in (None, "auto"):
            request_headers["X-PASSKEY-TOKEN"] = step_up
        text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
        # As a client sends it: bytes (a lone surrogate as the invalid UTF-8 it becomes on the wire).
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        return self.gateway.request(method, path, query=query, headers=request_headers, body=data,
                                    source_ip=source_ip or self.source_ip)

    def call_handler(self, method: str, path: str, authorizer: Mapping[str, str] | None, *,
                     headers: Mapping[str, str] | None = None, body: str | None = None,
                     is_base64: bool = False) -> Response:
        """The route's handler called directly (the gateway only finds the route) with the proxy event
        API Gateway would send it, but with this authorizer context: what no client can do."""
        resource = self.gateway.resource_of(method, path)
        [route] = [route for route in routes.ROUTES if (route.method, route.path) == (method, resource)]
        event = proxy_event(ProxyRequest(method, path, headers=dict(headers or {}), body=body), route.path,
                            resource_parameters(route.path, path), None if authorizer is None else dict(authorizer))
        event["isBase64Encoded"] = is_base64
        return call_handler(route.function_id, event)

    # The routes, as the app calls them.
    def create(self, user: str = "alice", **body: Any) -> Response:
        return self.call("POST", "/v1/trade/api-keys", user=user, body=body)

    def list(self, user: str = "alice") -> Response:
        return self.call("GET", "/v1/trade/api-keys", user=user)

    def update(self, key_id: str, user: str = "alice", **body: Any) -> Response:
        return self.call("PATCH", f"/v1/trade/api-keys/{key_id}", user=user, body=body)

    def revoke(self, key_id: str, user: str = "alice") -> Response:
        return self.call("DELETE", f"/v1/trade/api-keys/{key_id}", user=user)

    def revoke_all(self, user: str = "alice") -> Response:
        return self.call("DELETE", "/v1/trade/api-keys/all", user=user)

    def rotate(self, key_id: str, user: str = "alice", **body: Any) -> Response:
        return self.call("POST", f"/v1/trade/api-keys/{key_id}/rotate", user=user, body=body)

    def audit(self, key_id: str, user: str = "alice", query: str = "") -> Response:
        return self.call("GET", f"/v1/trade/api-keys/{key_id}/audit", user=user, query=query)


def call_handler(function_id: str, event: dict[str, Any], template_path: Path = template.TEMPLATE_PATH) -> Response:
    """A function's handler called directly with an event (API Gateway's routing and authorizers left out)."""
    result = template.load_handler(function_id, template_path)(event, LambdaContext(function_id))
    return Response(int(result["statusCode"]), dict(result.get("headers") or {}), result.get("body") or "")
