"""What both wire profiles share: the request and response bases, the error body, the bot-facing models.

Each profile's own request and response models are in keygate.profiles; the
rules their fields follow are keygate.rules. Validation that depends on the
deployment (which permissions are allowed) reads the allowed set from the
validation context (`validation_context`), so the models stay free of
configuration lookups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictStr,
    ValidationInfo,
    field_serializer,
    model_serializer,
)
from pydantic.json_schema import JsonDict, SkipJsonSchema

from keygate.config import KeyPolicy
from keygate.records import ApiKeyRecord, iso
from keygate.rules import (
    IP_ENTRY_MAX_CHARS,
    IP_WHITELIST_MAX_ENTRIES,
    LABEL_MAX_CHARS,
    PUBLIC_KEY_MAX_CHARS,
    normalise_public_key,
)


def validation_context(policy: KeyPolicy) -> dict[str, Any]:
    """What request validation needs from the deployment: the permissions keys may hold."""
    return {"allowed_permissions": policy.allowed_permissions}


def allowed_permissions(info: ValidationInfo) -> tuple[str, ...]:
    # A caller that passes no context (docs, tests) gets the default stack's rule, never "everything allowed".
    allowed = (info.context or {}).get("allowed_permissions")
    return tuple(allowed) if allowed is not None else KeyPolicy.allowed_permissions


def value_error_message(error: ValueError) -> str:
    """A rule's ValueError as a sentence for an error body."""
    text = str(error)
    return f"{text[0].upper()}{text[1:]}."


# The rules stated as JSON Schema for docs/openapi.json. They change the schema
# only: the validators (keygate.rules) still decide, and normalise.
LABEL_SCHEMA: JsonDict = {
    "maxLength": LABEL_MAX_CHARS,
    "description": f"At most {LABEL_MAX_CHARS} characters after trimming; no control, invisible or blank "
                   "characters."}
IP_WHITELIST_SCHEMA: JsonDict = {
    "items": {"type": "string", "minLength": 1, "maxLength": IP_ENTRY_MAX_CHARS},
    "maxItems": IP_WHITELIST_MAX_ENTRIES,
    "description": "IPv4/IPv6 addresses and CIDR blocks; 0.0.0.0/0 and ::/0 are refused; empty means any address."}



def public_key_schema(schema: JsonDict) -> None:
    """An optional public key: a string when sent (absent, not null, otherwise)."""
    schema.pop("default", None)
    schema.update({
        "maxLength": PUBLIC_KEY_MAX_CHARS,
        "description": "An Ed25519 public key: PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----) or base64 of its "
                       "32 raw bytes. Refused: other key types, non-canonical encodings, points of small order."})


def omitted_secret_schema(schema: JsonDict) -> None:
    """A secret only an HMAC key has: a string when present, left out (never null) for an Ed25519 key."""
    schema.pop("default", None)
    schema["description"] = "The secret, shown in this response only; absent for an Ed25519 key (it has none)."


def partial_update_schema(schema: JsonDict) -> None:
    """A partial update's schema: no field has a default (a field left out keeps its current value)."""
    properties = schema.get("properties")
    for field_schema in properties.values() if isinstance(properties, dict) else ():
        if isinstance(field_schema, dict):
            field_schema.pop("default", None)


def refuse_nulls(data: Any, names: tuple[str, ...]) -> Any:
    """A partial update may leave a field out, never send it as null."""
    if isinstance(data, dict):
        for name in names:
            if name in data and data[name] is None:
                raise ValueError(f"{name} must not be null; leave it out to keep the current value")
    return data


def _public_key_text(value: Any) -> Any:
    if value is None:  # (left out, the field's default is None, which is never validated)
        raise ValueError("must not be null; leave it out for an HMAC key, or send the Ed25519 public key")
    if not isinstance(value, str):
        raise ValueError("send it as a string: PEM, or base64 of the Ed25519 public key's 32 raw bytes")
    return value


# An optional Ed25519 public key, in every create and rotate model: left out, or a string, stored normalised
# (keygate.rules.normalise_public_key). Null, a number or an object is told what to send, rather than pydantic's
# "Input should be a valid string; ... Input should be None" for the union's two branches.
PublicKeyText = Annotated[StrictStr | SkipJsonSchema[None], BeforeValidator(_public_key_text),
                          AfterValidator(normalise_public_key)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Response(BaseModel):
    """A response: every datetime as ISO 8601 UTC with a Z, to the `TIMESPEC` its profile writes."""

    TIMESPEC: ClassVar[str] = "milliseconds"
    # Fields left out of the answer when they are None (a secret an Ed25519 key does not have), rather than null;
    # docs/openapi.json lists them as not required.
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @field_serializer("*", when_used="json")
    def _timestamps(self, value: Any) -> Any:
        return iso(value, timespec=self.TIMESPEC) if isinstance(value, datetime) else value

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        dumped = handler(self)
        for name in self.OMITTED_WHEN_NONE:
            if getattr(self, name) is None and isinstance(dumped, dict):
                dumped.pop(name, None)
                alias = type(self).model_fields[name].alias
                if alias:
                    dumped.pop(alias, None)
        return dumped


# ----------------------------------------------------------------- bot-facing
class CallingApiKey(Response):
    """What a bot may learn about the key it signs with (like Binance's API restrictions)."""

    api_key: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> CallingApiKey:
        return cls(api_key=record.key_id, label=record.label, permissions=record.permissions,
                   ip_whitelist=record.ip_whitelist, created_at=record.created_at, expires_at=record.expires_at)


class ServerTime(BaseModel):
    """GET /v1/time: the server's clock in milliseconds since the Unix epoch, for signing bots."""

    server_time: int


# ---------------------------------------------------------------------- errors
class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every refusal, from a handler (apigw.error_response) or from API Gateway (Gateway Responses):
    GaiaEx's error object, and ZDEX's `ok: false` beside it."""

    ok: Literal[False] = Field(default=False)
    error: ErrorDetail


# ------------------------------------------------- issue 16: events in, leaks, operators
class LeakedTokenAnswer(BaseModel):
    """GitHub's secret scanning partner response, per reported token: identified by its SHA-256, never itself."""

    token_hash: str = Field(description="SHA-256 of the reported token, hex")
    token_type: str = Field(description="the type GitHub reported it as")
    label: Literal["true_positive", "false_positive"] = Field(
        description="true_positive: a KeyGate secret of a key (revoked now, or before); false_positive: anything else")


class LeakReport(RootModel[list[LeakedTokenAnswer]]):
    """POST /v1/secret-scanning/github's answer: one entry per reported token, in the order reported."""


class OperatorRevokeRequest(Request):
    """An operator's revocation: one key of a user, or every key of the user when `api_key` is left out."""

    user_id: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
    api_key: str | None = Field(default=None, min_length=1, max_length=64,
                                description="the key to revoke; leave it out to revoke every key of the user")
    reason: str = Field(min_length=3, max_length=500, description="why (kept in each key's audit log)")


class OperatorRevocation(BaseModel):
    """What an operator's revocation did: the keys it revoked now (an already revoked key is not listed)."""

    user_id: str
    revoked: list[str]
    operator: str = Field(description="the caller's IAM identity (user ARN), as audited")
