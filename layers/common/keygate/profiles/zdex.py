"""The ZDEX wire profile: routes under /v1/api-keys, camelCase, `ok` on every answer, as ZDEX documents them.

A key is addressed by its `id`, an opaque handle that reveals nothing of the
key; the list shows the key's prefix, never the key. ZDEX's scopes map onto
KeyGate's permissions: READ_ONLY is read, TRADE is trade, and WITHDRAW ("full
access including withdrawals") is read, trade and withdraw. The contract:
docs/product.md, "ZDEX".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict, SkipJsonSchema

from keygate import keys
from keygate.errors import ErrorCode
from keygate.models import (
    IP_WHITELIST_SCHEMA,
    LABEL_SCHEMA,
    PublicKeyText,
    Request,
    Response,
    allowed_permissions,
    omitted_secret_schema,
    partial_update_schema,
    public_key_schema,
    refuse_nulls,
)
from keygate.records import ApiKeyRecord
from keygate.routing import Auth, Presentation, Route, Target
from keygate.rules import (
    EXPIRES_DAYS_MAX,
    GRACE_SECONDS_DEFAULT,
    GRACE_SECONDS_MAX,
    check_key_type,
    check_withdraw_whitelist,
    normalise_ip_whitelist,
    normalise_label,
    normalise_permissions,
)
from keygate.service import CreatedKey, KeyChange, NewKey, RevokedKey, RotatedKey, Rotation, UpdatedKey
from keygate.stepup import Action

Scope = Literal["READ_ONLY", "TRADE", "WITHDRAW"]
PERMISSIONS_OF_SCOPE: dict[str, tuple[str, ...]] = {
    "READ_ONLY": ("read",), "TRADE": ("trade",), "WITHDRAW": ("read", "trade", "withdraw")}
SCOPE_OF_PERMISSION: dict[str, Scope] = {"read": "READ_ONLY", "trade": "TRADE", "withdraw": "WITHDRAW"}
FIELD_NAMES = {"label": "label", "permissions": "permissions", "ip_whitelist": "ipWhitelist"}
SAVE_SECRET_MESSAGE = "Save your secret key now. It will not be shown again."  # noqa: S105  # nosec B105  # ZDEX's text
REVOKED_MESSAGE = "API key revoked"
ED25519_MESSAGE = "Sign with your Ed25519 private key; KeyGate holds only its public key and has no secret for it."
ROTATED_MESSAGE = ("Save your new secret key now. It will not be shown again. Switch to it at usableFrom; the "
                   "previous one works until previousValidUntil.")
ED25519_ROTATED_MESSAGE = ("Switch to your new private key at usableFrom; the previous public key verifies until "
                           "previousValidUntil.")
KeyType = Literal["hmac-sha256", "ed25519"]
_SCOPES_SCHEMA: JsonDict = {
    "minItems": 1, "uniqueItems": True,
    "description": "READ_ONLY, TRADE, WITHDRAW (full access: read, trade and withdraw; it needs an ipWhitelist, "
                   "and the stack must enable withdraw)."}
_REQUIRED_LABEL_SCHEMA: JsonDict = {**LABEL_SCHEMA, "minLength": 1}
_EXPIRES_AT_SCHEMA: JsonDict = {
    "description": f"ISO 8601 with a time zone (UTC), in the future, at most {EXPIRES_DAYS_MAX // 365} years ahead."}


def permissions_of(scopes: list[str], info: ValidationInfo) -> list[str]:
    if len(set(scopes)) != len(scopes):
        raise ValueError("a permission is listed twice")
    wanted = {permission for scope in scopes for permission in PERMISSIONS_OF_SCOPE[scope]}
    return normalise_permissions(sorted(wanted), allowed_permissions(info))


def scopes_of(permissions: list[str]) -> list[Scope]:
    return [SCOPE_OF_PERMISSION[permission] for permission in permissions]


def required_label(value: str) -> str:
    label = normalise_label(value)
    if not label:
        raise ValueError("label is required: a descriptive name of at most 50 characters")
    return label


# ------------------------------------------------------------------- requests
class _ZdexRequest(Request):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class ZdexCreateApiKeyRequest(_ZdexRequest):
    label: StrictStr = Field(json_schema_extra=_REQUIRED_LABEL_SCHEMA)
    permissions: list[Scope] = Field(default_factory=lambda: list[Scope](["READ_ONLY"]),
                                     json_schema_extra=_SCOPES_SCHEMA)
    ip_whitelist: list[StrictStr] = Field(default_factory=list, alias="ipWhitelist",
                                          json_schema_extra=IP_WHITELIST_SCHEMA)
    expires_at: AwareDatetime | None = Field(default=None, alias="expiresAt", json_schema_extra=_EXPIRES_AT_SCHEMA)
    key_type: KeyType = Field(default="hmac-sha256", alias="keyType",
                              description="hmac-sha256 (KeyGate makes the secret key) or ed25519 (send publicKey; no "
                                          "secret key exists).")
    public_key: PublicKeyText = Field(default=None, alias="publicKey", json_schema_extra=public_key_schema)
    _granted: list[str] = PrivateAttr(default_factory=list)  # KeyGate's permissions for the scopes

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        return required_label(value)

    @field_validator("ip_whitelist")
    @classmethod
    def _ip_whitelist(cls, value: list[str]) -> list[str]:
        return normalise_ip_whitelist(value)

    @model_validator(mode="after")
    def _grant(self, info: ValidationInfo) -> ZdexCreateApiKeyRequest:
        self._granted = permissions_of(list(self.permissions), info)
        check_withdraw_whitelist(self._granted, self.ip_whitelist)
        check_key_type(self.key_type, self.public_key, names=("keyType", "publicKey"))
        return self

    def domain(self) -> NewKey:
        return NewKey(label=self.label, permissions=self._granted, ip_whitelist=self.ip_whitelist,
                      expires_at=None if self.expires_at is None else self.expires_at.astimezone(UTC),
                      key_type=self.key_type, public_key=self.public_key)


class ZdexRotateApiKeyRequest(_ZdexRequest):
    """How long the previous secret key keeps working; an Ed25519 key's new public key."""

    grace_seconds: Annotated[StrictInt, Field(ge=0, le=GRACE_SECONDS_MAX)] = Field(
        default=GRACE_SECONDS_DEFAULT, alias="graceSeconds")
    public_key: PublicKeyText = Field(default=None, alias="publicKey", json_schema_extra=public_key_schema)

    def domain(self) -> Rotation:
        return Rotation(grace_seconds=self.grace_seconds, public_key=self.public_key)


class ZdexUpdateApiKeyRequest(_ZdexRequest):
    """Any subset of label, permissions and ipWhitelist, none included; only the fields sent change
    (`ipWhitelist: []` removes the restriction)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, json_schema_extra=partial_update_schema)

    label: StrictStr | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_REQUIRED_LABEL_SCHEMA)
    permissions: list[Scope] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_SCOPES_SCHEMA)
    ip_whitelist: list[StrictStr] | SkipJsonSchema[None] = Field(default=None, alias="ipWhitelist",
                                                                 json_schema_extra=IP_WHITELIST_SCHEMA)
    _granted: list[str] | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return refuse_nulls(data, tuple(FIELD_NAMES.values()))

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return None if value is None else required_label(value)

    @field_validator("ip_whitelist")
    @classmethod
    def _ip_whitelist(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_ip_whitelist(value)

    @model_validator(mode="after")
    def _grant(self, info: ValidationInfo) -> ZdexUpdateApiKeyRequest:
        if self.permissions is not None:
            self._granted = permissions_of(list(self.permissions), info)
        return self

    def domain(self) -> KeyChange:
        fields: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set}
        if self._granted is not None:
            fields["permissions"] = self._granted
        return KeyChange(fields=fields)


# ------------------------------------------------------------------ responses
class _ZdexResponse(Response):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    ok: Literal[True] = True


class ZdexCreatedApiKey(_ZdexResponse):
    """The new key; `secretKey` only for an HMAC key (an Ed25519 key has none: the field is left out)."""

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("secret_key",)

    id: str
    api_key: str
    # Never in a repr, a log line or a validation error.
    secret_key: str | SkipJsonSchema[None] = Field(default=None, repr=False, json_schema_extra=omitted_secret_schema)
    label: str
    permissions: list[Scope]
    message: str = SAVE_SECRET_MESSAGE
    ip_whitelist: list[str]
    key_prefix: str
    created_at: datetime
    expires_at: datetime | None
    key_type: KeyType


class ZdexRotatedApiKey(_ZdexResponse):
    """The rotated key: its new secret key (an HMAC key's only, shown once), from when it verifies everywhere
    (`usableFrom`) and until when the previous one still does (`previousValidUntil`)."""

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("secret_key",)

    id: str
    api_key: str
    # Never in a repr, a log line or a validation error.
    secret_key: str | SkipJsonSchema[None] = Field(default=None, repr=False, json_schema_extra=omitted_secret_schema)
    key_type: KeyType
    usable_from: datetime
    previous_valid_until: datetime
    message: str


class ZdexApiKeyView(Response):
    """A key as the list shows it: its prefix, never the key, never a secret."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    label: str
    key_prefix: str
    permissions: list[Scope]
    ip_whitelist: list[str]
    is_active: bool
    last_used_at: datetime | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    key_type: KeyType


class ZdexApiKeyList(_ZdexResponse):
    keys: list[ZdexApiKeyView]


class ZdexUpdatedApiKey(_ZdexResponse):
    id: str
    updated_fields: list[str]
    label: str
    permissions: list[Scope]
    ip_whitelist: list[str]


class ZdexRevokedApiKey(_ZdexResponse):
    id: str
    message: str = REVOKED_MESSAGE
    is_active: Literal[False] = False
    revoked_at: datetime
    already_revoked: bool


# ----------------------------------------------------------------- presenters
def _prefix(record: ApiKeyRecord, context: Presentation) -> str:
    return keys.visible_prefix(record.key_id, context.key_id_prefix)


def present_created(created: CreatedKey, context: Presentation) -> ZdexCreatedApiKey:
    record = created.record
    return ZdexCreatedApiKey(id=record.handle, api_key=record.key_id, secret_key=created.secret, label=record.label,
                             permissions=scopes_of(record.permissions), ip_whitelist=record.ip_whitelist,
                             key_prefix=_prefix(record, context), created_at=record.created_at,
                             expires_at=record.expires_at, key_type=_key_type(record),
                             message=SAVE_SECRET_MESSAGE if created.secret is not None else ED25519_MESSAGE)


def _key_type(record: ApiKeyRecord) -> KeyType:
    return "ed25519" if record.key_type == "ed25519" else "hmac-sha256"


def present_rotated(rotated: RotatedKey, context: Presentation) -> ZdexRotatedApiKey:
    # To the millisecond, as ZDEX writes times: usable_from rounds up, so a bot switching then is never early.
    usable_from = rotated.usable_from
    if usable_from.microsecond % 1000:
        usable_from += timedelta(microseconds=1000 - usable_from.microsecond % 1000)
    return ZdexRotatedApiKey(id=rotated.record.handle, api_key=rotated.record.key_id, secret_key=rotated.secret,
                             key_type=_key_type(rotated.record), usable_from=usable_from,
                             previous_valid_until=rotated.previous_valid_until,
                             message=ROTATED_MESSAGE if rotated.secret is not None else ED25519_ROTATED_MESSAGE)


def present_list(records: list[ApiKeyRecord], context: Presentation) -> ZdexApiKeyList:
    return ZdexApiKeyList(keys=[ZdexApiKeyView(
        id=record.handle, label=record.label, key_prefix=_prefix(record, context),
        permissions=scopes_of(record.permissions), ip_whitelist=record.ip_whitelist,
        is_active=record.is_active(context.now), last_used_at=record.last_used_at, created_at=record.created_at,
        expires_at=record.expires_at, revoked_at=record.revoked_at, key_type=_key_type(record)) for record in records])


def present_updated(updated: UpdatedKey, context: Presentation) -> ZdexUpdatedApiKey:
    record = updated.record
    return ZdexUpdatedApiKey(id=record.handle, updated_fields=[FIELD_NAMES[name] for name in updated.updated_fields],
                             label=record.label, permissions=scopes_of(record.permissions),
                             ip_whitelist=record.ip_whitelist)


def present_revoked(revoked: RevokedKey, context: Presentation) -> ZdexRevokedApiKey:
    return ZdexRevokedApiKey(id=revoked.record.handle, revoked_at=revoked.record.revoked_at or context.now,
                             already_revoked=revoked.already_revoked)


# --------------------------------------------------------------------- routes
_BAD_BODY = (ErrorCode.INVALID_REQUEST, ErrorCode.MALFORMED_JSON, ErrorCode.PAYLOAD_TOO_LARGE)
_STEP_UP = (ErrorCode.STEP_UP_REQUIRED,)
_PREREQUISITES = (ErrorCode.ONBOARDING_REQUIRED, ErrorCode.TRADING_HANDSHAKE_REQUIRED)
_RACE = (ErrorCode.CONCURRENT_MODIFICATION,)
_TAG = "zdex"
_KEY = ("id", Target.HANDLE)

CREATE_API_KEY = Route(
    "CreateApiKeyFunction", "POST", "/v1/api-keys", Auth.SESSION,
    operation_id="zdexCreateApiKey", summary="Create an API key; the secret key is in this response only.",
    tag=_TAG, response_model=ZdexCreatedApiKey, present=present_created, request_model=ZdexCreateApiKeyRequest,
    step_up=Action.CREATE,
    refusals=(*_BAD_BODY, ErrorCode.KEY_LIMIT_REACHED, *_STEP_UP, *_PREREQUISITES, *_RACE),
    request_examples={"ZDEX's example": {"label": "My Trading Bot", "permissions": ["READ_ONLY", "TRADE"],
                                         "ipWhitelist": ["203.0.113.50"]},
                      "read-only": {"label": "dashboard"}})
LIST_API_KEYS = Route(
    "ListApiKeysFunction", "GET", "/v1/api-keys", Auth.SESSION,
    operation_id="zdexListApiKeys", summary="The caller's keys, newest first: each key's prefix, never the key.",
    tag=_TAG, response_model=ZdexApiKeyList, present=present_list)
UPDATE_API_KEY = Route(
    "UpdateApiKeyFunction", "PATCH", "/v1/api-keys/{id}", Auth.SESSION,
    operation_id="zdexUpdateApiKey", summary="Change label, permissions or ipWhitelist; only the fields sent.",
    tag=_TAG, response_model=ZdexUpdatedApiKey, present=present_updated, request_model=ZdexUpdateApiKeyRequest,
    step_up=Action.UPDATE, target=_KEY,
    refusals=(*_BAD_BODY, ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED, *_STEP_UP, *_PREREQUISITES,
              ErrorCode.KEY_NOT_FOUND, *_RACE),
    request_examples={"ZDEX's example": {"label": "Updated Name", "permissions": ["READ_ONLY"], "ipWhitelist": []}})
REVOKE_API_KEY = Route(
    "RevokeApiKeyFunction", "DELETE", "/v1/api-keys/{id}", Auth.SESSION,
    operation_id="zdexRevokeApiKey", summary="Revoke a key, permanently.", tag=_TAG,
    response_model=ZdexRevokedApiKey, present=present_revoked, step_up=Action.REVOKE, target=_KEY,
    refusals=(*_STEP_UP, ErrorCode.KEY_NOT_FOUND, *_RACE))

# Issue 15: rotation with a grace period (docs/architecture.md, "Rotation").
ROTATE_API_KEY = Route(
    "RotateApiKeyFunction", "POST", "/v1/api-keys/{id}/rotate", Auth.SESSION,
    operation_id="zdexRotateApiKey", summary="Give a key a new secret key (or, for an Ed25519 key, the publicKey "
                                             "sent); the previous one works until the grace ends.", tag=_TAG,
    response_model=ZdexRotatedApiKey, present=present_rotated, request_model=ZdexRotateApiKeyRequest,
    empty_body_means={}, step_up=Action.ROTATE, target=_KEY,
    refusals=(*_BAD_BODY, ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED, *_STEP_UP, ErrorCode.KEY_NOT_FOUND, *_RACE),
    request_examples={"default grace (an hour)": {}, "a leaked secret key: no grace": {"graceSeconds": 0}})

ROUTES: tuple[Route, ...] = (CREATE_API_KEY, LIST_API_KEYS, UPDATE_API_KEY, REVOKE_API_KEY, ROTATE_API_KEY)
