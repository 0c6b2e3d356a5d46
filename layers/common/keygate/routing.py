"""What a route declaration says (the declarations themselves: keygate.routes and keygate.profiles).

A `Route` is everything API Gateway, a client and KeyGate need to know about
one route: method and path, who may call it (`Auth`), the passkey step-up
action a mutation needs, which path parameter names the caller's key and how,
the request and response models, how a domain result becomes the response
(`present`), the query parameters, and the refusals its handler can answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from keygate.errors import ErrorCode
from keygate.stepup import Action


class Auth(StrEnum):
    """Who may call a route: the name of its authorizer in template.yaml."""

    SESSION = "SessionAuthorizer"  # the app's session JWT
    SIGNATURE = "SignatureAuthorizer"  # a bot's KG1 signature
    NONE = "NONE"
    IAM = "AWS_IAM"  # SigV4 by an IAM principal the stack names (the operators' routes, issue 16)


class Target(StrEnum):
    """How a route's path names one of the caller's keys."""

    KEY_ID = "key_id"  # the key id itself (GaiaEx's {api_key})
    HANDLE = "handle"  # the key's opaque handle (ZDEX's {id})
    PASSKEY = "passkey"  # one of the caller's passkeys (its credential id)


@dataclass(frozen=True)
class QueryInteger:
    """An optional integer query parameter, bounded."""

    name: str
    default: int
    minimum: int
    maximum: int
    description: str


@dataclass(frozen=True)
class Presentation:
    """What turning a domain result into a response may need beside the result."""

    now: datetime
    key_id_prefix: str


Present = Callable[[Any, Presentation], BaseModel]


@dataclass(frozen=True)
class Route:
    function_id: str  # the template's function serving the route
    method: str
    path: str  # API Gateway's resource path, with {parameters}
    auth: Auth
    operation_id: str
    summary: str
    tag: str
    response_model: type[BaseModel]
    # The domain result (of keygate.service) as the response model; None: the handler answers the model.
    present: Present | None = None
    success_status: int = 200
    request_model: type[BaseModel] | None = None
    # None: the body is required; a mapping: what an absent or empty body means.
    empty_body_means: Mapping[str, Any] | None = None
    step_up: Action | None = None
    # The handler checks the step-up itself (a user's first passkey needs none: keygate.stepup_service).
    step_up_in_handler: bool = False
    # The path parameter naming one of the caller's keys, and how it names it.
    target: tuple[str, Target] | None = None
    query: tuple[QueryInteger, ...] = ()
    # Refusals the handler itself answers (its authorizer's and API Gateway's are described by `auth`).
    refusals: tuple[ErrorCode, ...] = ()
    # Valid bodies, shown in the OpenAPI description (tests check each against the request model).
    request_examples: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(segment[1:-1] for segment in self.path.split("/") if segment.startswith("{"))
