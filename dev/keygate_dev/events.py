"""Sample events in events/: run one through its function's handler, in this process, without Docker.

Each `events/<name>.json` is a Lambda event as API Gateway or the scheduler sends it (the shapes
`sam local generate-event` produces). Its sidecar `events/<name>.expected.json` names the function,
the status the event must give and what to seed first:

    {"function": "UpdateApiKeyFunction", "status": 404, "error_code": "KEY_NOT_FOUND",
     "description": "alice cannot change bob's key",
     "seed": {"accounts": {"alice": {}, "bob": {"trading_handshake_completed": false}},
              "keys": {"bobs_key": {"owner": "bob", "label": "bob's bot"}}},
     "response": {"optional": "top-level fields the response body (or result) must have"}}

Accounts are onboarded with the trading handshake unless they say otherwise; keys are created through
`keygate.service` (optionally `created_days_ago`, `expires_days`, `revoked`), in the order listed.

Static files cannot hold live tokens or ids, so events carry placeholders, filled right before the call:

    {{user:<name>}}       the user id of <name> for this run
    {{session:<name>}}    a fresh session JWT for <name>
    {{step_up:<action>}}  a fresh passkey step-up token for <action> (e.g. api_keys:create), issued to
                          the event's user (requestContext.authorizer.user_id)
    {{key:<name>}}        the id (the API key) of the key <name> seeded by the sidecar
    {{id:<name>}}         the ZDEX id (the opaque handle) of that key

One placeholder text gets one value per run (headers and multiValueHeaders carry the same token).
By default every run gets its own user ids (`alice-<run id>`), so running an event again against the
same store gives the same answer.

Events that need more than a string (a request signed with a seeded key's secret, say) list steps in
the sidecar, `"prepare": [{"use": "<name>", ...arguments}]`; each names a function registered here with
`@preparer("<name>")`, called as `function(event, run, **arguments)` after the placeholders are filled.

The caller configures the store's environment first (moto in tests, the embedded emulation in
`keygate dev invoke`); seeding goes through the layer, never through boto3.
"""

from __future__ import annotations

import json
import re
import traceback
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import kg1
from keygate import apigw, wiring
from keygate.profiles.gaiaex import CreateApiKeyRequest
from keygate.records import AccountState, now_utc
from keygate.service import KeyRef
from keygate.stepup import Action, StepUpUse
from keygate_dev import template
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.lambda_runner import LambdaContext

EVENTS_DIR = template.ROOT / "events"
SIDECAR_SUFFIX = ".expected.json"
# The `sam local invoke --env-vars` file that goes with the events (not an event).
ENV_VARS_PATH = EVENTS_DIR / "env.json"
SEED_SOURCE_IP = "198.51.100.200"
# How long a seeded change's step-up use is kept, after the (possibly past) moment of the change.
_SEED_TOKEN_SECONDS = 300
_PLACEHOLDER = re.compile(r"\{\{(\w+):([^{}]+)\}\}")

Preparer = Callable[..., dict[str, Any]]
_PREPARERS: dict[str, Preparer] = {}


def preparer(name: str) -> Callable[[Preparer], Preparer]:
    """Register a step that sidecars can name in `"prepare": [{"use": name, ...}]`."""

    def register(function: Preparer) -> Preparer:
        _PREPARERS[name] = function
        return function

    return register


# ------------------------------------------------------------------ sidecars
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedAccount(_Strict):
    onboarding_completed: bool = True
    trading_handshake_completed: bool = True


class SeedKey(_Strict):
    owner: str
    label: str = ""
    permissions: list[str] = Field(default_factory=lambda: ["read"])
    ip_whitelist: list[str] = Field(default_factory=list)
    expires_days: int | None = None
    created_days_ago: float = Field(default=0, ge=0)
    revoked: bool = False


class Seed(_Strict):
    accounts: dict[str, SeedAccount] = Field(default_factory=dict)
    keys: dict[str, SeedKey] = Field(default_factory=dict)


class PrepareStep(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    use: str

    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Expectation(_Strict):
    function: str
    status: int = Field(ge=100, le=599)
    description: str = ""
    error_code: str | None = None
    response: dict[str, Any] = Field(default_factory=dict)
    seed: Seed = Field(default_factory=Seed)
    prepare: list[PrepareStep] = Field(default_factory=list)


def event_files() -> list[Path]:
    """Every sample event (sidecars and env.json excluded), sorted by name."""
    return sorted(path for path in EVENTS_DIR.glob("*.json")
                  if not path.name.endswith(SIDECAR_SUFFIX) and path != ENV_VARS_PATH)


def sidecar_path(event_path: Path) -> Path:
    return event_path.with_name(event_path.name.removesuffix(".json") + SIDECAR_SUFFIX)


def expectation(event_path: Path) -> Expectation:
    """The event's sidecar, validated (unknown fields are an error, to catch typos)."""
    return Expectation.model_validate_json(sidecar_path(event_path).read_text())


def status_in_name(event_path: Path) -> int | None:
    """`revoke_api_key.404.malformed_id.json` says 404; names without a status say nothing."""
    parts = event_path.name.removesuffix(".json").split(".")
    return int(parts[1]) if len(parts) > 1 and re.fullmatch(r"[1-5]\d\d", parts[1]) else None


# ------------------------------------------------------------------- seeding
@dataclass(frozen=True)
class SeededKey:
    """A key seeded for an event or a test: its id, its secret (a bot signs with it) and its ZDEX handle."""

    api_key: str
    api_secret: str = field(repr=False)
    handle: str


def seed_key(user_id: str, *, at: datetime | None = None, revoked: bool = False, source_ip: str = SEED_SOURCE_IP,
             **fields: Any) -> SeededKey:
    """Create a key through the lifecycle as if at `at` (a past moment, or now), optionally revoke it.

    `fields` are GaiaEx's CreateApiKeyRequest fields, validated against the stack's allowed permissions.
    The owner must already meet the prerequisites for them. Seeding confirms each change itself
    (a fresh step-up use), as the app's user would with a passkey.
    """
    moment = at or now_utc()
    app = wiring.management()
    request = CreateApiKeyRequest.model_validate(fields, context=app.validation_context())
    created = app.lifecycle.at(lambda: moment).create_api_key(user_id, request.domain(),
                                                              step_up=_seed_step_up(moment), source_ip=source_ip)
    if revoked:
        # A millisecond later, so the audit log orders the revocation after the creation.
        revoked_at = moment + timedelta(milliseconds=1)
        app.lifecycle.at(lambda: revoked_at).revoke_api_key(user_id, KeyRef(key_id=created.record.key_id),
                                                            source_ip=source_ip, step_up=_seed_step_up(revoked_at))
    return SeededKey(api_key=created.record.key_id, api_secret=created.secret, handle=created.record.handle)


def _seed_step_up(moment: datetime) -> StepUpUse:
    return StepUpUse(jti=uuid.uuid4().hex, expires_at_epoch=int(moment.timestamp()) + _SEED_TOKEN_SECONDS)


@dataclass
class EventRun:
    """One run of one event: its users, the keys seeded for it, and the values of its placeholders."""

    identity: LocalIdentityProvider
    run_id: str = ""
    keys: dict[str, SeededKey] = field(default_factory=dict)
    event_user: str | None = None
    _values: dict[str, str] = field(default_factory=dict)

    def user(self, name: str) -> str:
        return f"{name}-{self.run_id}" if self.run_id else name

    def seed(self, seed: Seed) -> None:
        for name, account in seed.accounts.items():
            wiring.management().keys.put_account_state(self.user(name), AccountState(**account.model_dump()))
        now = now_utc()
        for position, (name, key) in enumerate(seed.keys.items()):
            # Later entries are a millisecond newer, so lists show them in a known order.
            moment = now - timedelta(days=key.created_days_ago, milliseconds=len(seed.keys) - position)
            self.keys[name] = seed_key(self.user(key.owner), at=moment, revoked=key.revoked,
                                       **key.model_dump(exclude={"owner", "created_days_ago", "revoked"}))

    def fill(self, value: Any) -> Any:
        """The value with every placeholder replaced, recursively through lists and objects."""
        if isinstance(value, str):
            return _PLACEHOLDER.sub(lambda match: self._value(match.group(0), match.group(1), match.group(2)), value)
        if isinstance(value, list):
            return [self.fill(entry) for entry in value]
        if isinstance(value, dict):
            return {name: self.fill(entry) for name, entry in value.items()}
        return value

    def _value(self, text: str, kind: str, argument: str) -> str:
        if text not in self._values:
            self._values[text] = self._resolve(kind, argument)
        return self._values[text]

    def _resolve(self, kind: str, argument: str) -> str:
        if kind == "user":
            return self.user(argument)
        if kind == "session":
            return self.identity.session_token(self.user(argument))
        if kind == "step_up":
            if not self.event_user:
                raise ValueError("{{step_up:...}} needs the event's requestContext.authorizer.user_id")
            return self.identity.step_up_token(self.event_user, Action(argument).value)
        if kind in ("key", "id"):
            if argument not in self.keys:
                raise ValueError(f"{{{{{kind}:{argument}}}}} names no key seeded by the sidecar")
            return self.keys[argument].api_key if kind == "key" else self.keys[argument].handle
        raise ValueError(f"unknown placeholder {{{{{kind}:{argument}}}}}")


# ------------------------------------------------------------------- running
SEEDING_FUNCTION = "CreateApiKeyFunction"  # the function whose environment seeding runs in (it creates keys)


def run_event(function_id: str, event_path: Path, identity: LocalIdentityProvider, *,
              isolated: bool = True,
              environment_of: Callable[[str], AbstractContextManager[object]] | None = None) -> dict[str, Any]:
    """Seed what the sidecar declares, fill the placeholders and invoke the function's handler.

    Returns what the function returned (a proxy response, an authorizer policy, a janitor report);
    an exception becomes Lambda's error result, `{"errorType", "errorMessage", "stackTrace"}`.
    `isolated=False` uses the sidecar's user names as they are (for a demo account, say).
    `environment_of(function_id)`, when given, gives this process a function's environment: keys are then
    seeded as the create path (the function that creates them, with its KMS key) and the event runs as
    `function_id`; without it both run in the environment as it is.
    """
    environment = environment_of or (lambda _function_id: nullcontext())
    run = EventRun(identity, run_id=uuid.uuid4().hex[:8] if isolated else "")
    plan = expectation(event_path) if sidecar_path(event_path).exists() else None
    event = json.loads(event_path.read_text())
    if plan is not None:
        with environment(SEEDING_FUNCTION):
            run.seed(plan.seed)
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    run.event_user = run.fill(authorizer.get("user_id") or authorizer.get("principalId"))
    event = run.fill(event)
    for step in plan.prepare if plan is not None else []:
        if step.use not in _PREPARERS:
            raise ValueError(f"{event_path.name}: no preparer named {step.use!r}")
        event = _PREPARERS[step.use](event, run, **step.arguments())
    handler = template.load_handler(function_id)
    with environment(function_id):
        try:
            return handler(event, LambdaContext(function_id))
        except Exception as error:  # noqa: BLE001 - reported the way Lambda reports a failed invocation
            return {"errorType": type(error).__name__, "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error)}


@cache
def authorizer_functions() -> frozenset[str]:
    """Functions that template.yaml's APIs use as Lambda authorizers."""
    found = set()
    for gateway in template.resources("AWS::Serverless::Api").values():
        for authorizer in ((gateway["Properties"].get("Auth") or {}).get("Authorizers") or {}).values():
            arn = authorizer.get("FunctionArn")
            if isinstance(arn, dict) and "Fn::GetAtt" in arn:
                target = arn["Fn::GetAtt"]
                found.add(target[0] if isinstance(target, list) else target.split(".")[0])
    return frozenset(found)


def response_status(function_id: str, result: dict[str, Any]) -> int:
    """The HTTP status a result stands for, as API Gateway would answer it.

    A proxy response carries its own; an authorizer's Allow is 200, a Deny the template's ACCESS_DENIED
    status (401), an error 'Unauthorized' 401 and any other failure 503 (the template's
    AUTHORIZER_CONFIGURATION_ERROR response); a function without an HTTP face (the janitor) is 200 when it
    returns and 500 when it raises.
    """
    if "statusCode" in result:
        return int(result["statusCode"])
    if "policyDocument" in result:
        effects = {statement["Effect"] for statement in result["policyDocument"]["Statement"]}
        return 200 if effects == {"Allow"} else int(template.gateway_responses()["ACCESS_DENIED"]["StatusCode"])
    if "errorType" in result:
        if function_id in authorizer_functions():
            return 401 if result.get("errorMessage") == "Unauthorized" else 503
        return 500
    return 200


def response_fields(result: dict[str, Any]) -> dict[str, Any]:
    """What a sidecar's `response` is compared with: the decoded JSON body, or the result itself."""
    if "statusCode" in result:
        body = result.get("body") or "{}"
        return json.loads(body)
    return result


@preparer("kg1_sign")
def kg1_sign(event: dict[str, Any], run: EventRun, *, key: str, tamper: str | None = None) -> dict[str, Any]:
    """Sign a REQUEST authorizer event now with a seeded key's secret, as a bot would (docs/signing.md).

    `tamper: "signature"` sends a signature for another path, for events that must be refused.
    """
    created = run.keys[key]
    request = apigw.signed_request(event)
    path = request.path + ("/tampered" if tamper == "signature" else "")
    headers = kg1.sign_request(created.api_key, created.api_secret, request.method, path, request.query_pairs)
    return {**event, "headers": {**(event.get("headers") or {}), **headers},
            "multiValueHeaders": {**(event.get("multiValueHeaders") or {}),
                                  **{name: [value] for name, value in headers.items()}}}
