"""The GaiaEx wire profile: routes under /v1/trade/api-keys, snake_case, exactly as GaiaEx documents them.

Its request models validate with keygate.rules and hand the domain a
`NewKey` / `KeyChange`; its presenters turn the domain's results into the
documented responses, with the fields KeyGate adds beside the documented ones
(never instead of them). The contract: docs/product.md, "GaiaEx".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictInt, StrictStr, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import JsonDict, SkipJsonSchema

from keygate import keys
from keygate.config import KNOWN_PERMISSIONS
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
from keygate.records import ApiKeyRecord, AuditEntry, AuditEvent, iso
from keygate.routing import Auth, Presentation, QueryInteger, Route, Target
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
from keygate.service import CreatedKey, KeyAudit, KeyChange, NewKey, RevokedKey, RotatedKey, Rotation, UpdatedKey
from keygate.stepup import Action

SAVE_SECRET_MESSAGE = "Save your API secret now. It will NOT be shown again."  # noqa: S105  # nosec B105  # GaiaEx's text
ED25519_MESSAGE = "Sign with your Ed25519 private key; KeyGate holds only its public key and has no secret for it."
ROTATED_MESSAGE = ("Save your new API secret now. It will NOT be shown again. Switch to it at usable_from; the "
                   "previous secret works until previous_valid_until.")
ED25519_ROTATED_MESSAGE = ("Switch to your new private key at usable_from; the previous public key verifies until "
                           "previous_valid_until.")
KeyType = Literal["hmac-sha256", "ed25519"]
REVOKED_MESSAGE = "API key revoked"
_PERMISSIONS_SCHEMA: JsonDict = {
    "items": {"type": "string", "enum": list(KNOWN_PERMISSIONS)}, "minItems": 1, "uniqueItems": True,
    "description": "read and/or trade; withdraw only where the stack enables it, and only with an ip_whitelist."}


# ------------------------------------------------------------------- requests
class CreateApiKeyRequest(Request):
    label: StrictStr = Field(default="", json_schema_extra=LABEL_SCHEMA)
    permissions: list[StrictStr] = Field(default_factory=lambda: ["read"], json_schema_extra=_PERMISSIONS_SCHEMA)
    ip_whitelist: list[StrictStr] = Field(default_factory=list, json_schema_extra=IP_WHITELIST_SCHEMA)
    expires_days: Annotated[StrictInt, Field(ge=1, le=EXPIRES_DAYS_MAX)] | None = None
    key_type: KeyType = Field(default="hmac-sha256", description="hmac-sha256 (KeyGate makes the secret) or ed25519 "
                                                                 "(send public_key; no secret exists).")
    public_key: PublicKeyText = Field(default=None, json_schema_extra=public_key_schema)

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        return normalise_label(value)

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return normalise_permissions(value, allowed_permissions(info))

    @field_validator("ip_whitelist")
    @classmethod
    def _ip_whitelist(cls, value: list[str]) -> list[str]:
        return normalise_ip_whitelist(value)

    @model_validator(mode="after")
    def _withdraw_needs_whitelist(self) -> CreateApiKeyRequest:
        check_withdraw_whitelist(self.permissions, self.ip_whitelist)
        check_key_type(self.key_type, self.public_key)
        return self

    def domain(self) -> NewKey:
        return NewKey(label=self.label, permissions=self.permissions, ip_whitelist=self.ip_whitelist,
                      expires_in_days=self.expires_days, key_type=self.key_type, public_key=self.public_key)


class RotateApiKeyRequest(Request):
    """How long the previous secret keeps working; an Ed25519 key's new public key."""

    grace_seconds: Annotated[StrictInt, Field(ge=0, le=GRACE_SECONDS_MAX)] = GRACE_SECONDS_DEFAULT
    public_key: PublicKeyText = Field(default=None, json_schema_extra=public_key_schema)

    def domain(self) -> Rotation:
        return Rotation(grace_seconds=self.grace_seconds, public_key=self.public_key)


class UpdateApiKeyRequest(Request):
    """Any subset of the mutable fields, none included (GaiaEx: "all fields optional"; `{}` changes nothing);
    `ip_whitelist: []` removes the restriction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=partial_update_schema)

    label: StrictStr | SkipJsonSchema[None] = Field(default=None, json_schema_extra=LABEL_SCHEMA)
    permissions: list[StrictStr] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_PERMISSIONS_SCHEMA)
    ip_whitelist: list[StrictStr] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=IP_WHITELIST_SCHEMA)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return refuse_nulls(data, ("label", "permissions", "ip_whitelist"))

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return None if value is None else normalise_label(value)

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return None if value is None else normalise_permissions(value, allowed_permissions(info))

    @field_validator("ip_whitelist")
    @classmethod
    def _ip_whitelist(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_ip_whitelist(value)

    def domain(self) -> KeyChange:
        return KeyChange(fields={name: getattr(self, name) for name in sorted(self.model_fields_set)})


# ------------------------------------------------------------------ responses
class GaiaExResponse(Response):
    """GaiaEx's doc writes times to the second: "2026-04-01T12:00:00Z"."""

    TIMESPEC: ClassVar[str] = "seconds"


class CreatedApiKey(GaiaExResponse):
    """The new key; `api_secret` only for an HMAC key (an Ed25519 key has none: the field is left out)."""

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("api_secret",)

    api_key: str
    # Never in a repr, a log line or a validation error.
    api_secret: str | SkipJsonSchema[None] = Field(default=None, repr=False, json_schema_extra=omitted_secret_schema)
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: datetime
    expires_at: datetime | None
    message: str = SAVE_SECRET_MESSAGE
    key_prefix: str
    key_type: KeyType


class RotatedApiKey(GaiaExResponse):
    """The rotated key: its new secret (an HMAC key's only, shown once), from when it verifies everywhere
    (`usable_from`) and until when the previous one still does (`previous_valid_until`)."""

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("api_secret",)

    success: Literal[True] = True
    api_key: str
    # Never in a repr, a log line or a validation error.
    api_secret: str | SkipJsonSchema[None] = Field(default=None, repr=False, json_schema_extra=omitted_secret_schema)
    key_type: KeyType
    usable_from: datetime
    previous_valid_until: datetime
    message: str


class ApiKeyView(GaiaExResponse):
    """A key as the list shows it: never a secret."""

    api_key: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    is_active: bool
    key_prefix: str
    revoked_at: datetime | None
    key_type: KeyType


class ApiKeyList(GaiaExResponse):
    """The caller's keys, newest first."""

    keys: list[ApiKeyView]
    count: int


class UpdatedApiKey(GaiaExResponse):
    success: Literal[True] = True
    api_key: str
    updated_fields: list[str]
    label: str
    permissions: list[str]
    ip_whitelist: list[str]


class RevokedApiKey(GaiaExResponse):
    success: Literal[True] = True
    message: str = REVOKED_MESSAGE
    api_key: str
    is_active: Literal[False] = False
    revoked_at: datetime
    already_revoked: bool


class RevokedAll(GaiaExResponse):
    success: Literal[True] = True
    revoked_count: int
    revoked_api_keys: list[str]


class AuditEntryView(GaiaExResponse):
    """One lifecycle change of a key: what happened, from where, when, in a sentence (`details`) and as
    data (`data`)."""

    action: AuditEvent
    ip_address: str
    created_at: datetime
    details: str
    data: dict[str, Any]


class AuditLog(GaiaExResponse):
    api_key: str
    audit: list[AuditEntryView]
    count: int


# ----------------------------------------------------------------- presenters
def _key_prefix(record: ApiKeyRecord, context: Presentation) -> str:
    return keys.visible_prefix(record.key_id, context.key_id_prefix)


def present_created(created: CreatedKey, context: Presentation) -> CreatedApiKey:
    record = created.record
    return CreatedApiKey(api_key=record.key_id, api_secret=created.secret, label=record.label,
                         permissions=record.permissions, ip_whitelist=record.ip_whitelist,
                         created_at=record.created_at, expires_at=record.expires_at,
                         key_prefix=_key_prefix(record, context), key_type=_key_type(record),
                         message=SAVE_SECRET_MESSAGE if created.secret is not None else ED25519_MESSAGE)


def _key_type(record: ApiKeyRecord) -> KeyType:
    return "ed25519" if record.key_type == "ed25519" else "hmac-sha256"


def present_rotated(rotated: RotatedKey, context: Presentation) -> RotatedApiKey:
    # To the second, as GaiaEx writes times: usable_from rounds up, so a bot switching then is never early.
    return RotatedApiKey(api_key=rotated.record.key_id, api_secret=rotated.secret, key_type=_key_type(rotated.record),
                         usable_from=_ceil_second(rotated.usable_from),
                         previous_valid_until=rotated.previous_valid_until.replace(microsecond=0),
                         message=ROTATED_MESSAGE if rotated.secret is not None else ED25519_ROTATED_MESSAGE)


def _ceil_second(moment: datetime) -> datetime:
    return moment if moment.microsecond == 0 else moment.replace(microsecond=0) + timedelta(seconds=1)


def present_list(records: list[ApiKeyRecord], context: Presentation) -> ApiKeyList:
    return ApiKeyList(count=len(records), keys=[ApiKeyView(
        api_key=record.key_id, label=record.label, permissions=record.permissions, ip_whitelist=record.ip_whitelist,
        created_at=record.created_at, expires_at=record.expires_at, last_used_at=record.last_used_at,
        is_active=record.is_active(context.now), key_prefix=_key_prefix(record, context),
        revoked_at=record.revoked_at, key_type=_key_type(record)) for record in records])


def present_updated(updated: UpdatedKey, context: Presentation) -> UpdatedApiKey:
    record = updated.record
    return UpdatedApiKey(api_key=record.key_id, updated_fields=updated.updated_fields, label=record.label,
                         permissions=record.permissions, ip_whitelist=record.ip_whitelist)


def present_revoked(revoked: RevokedKey, context: Presentation) -> RevokedApiKey:
    record = revoked.record
    return RevokedApiKey(api_key=record.key_id, revoked_at=record.revoked_at or context.now,
                         already_revoked=revoked.already_revoked)


def present_revoked_all(key_ids: list[str], context: Presentation) -> RevokedAll:
    return RevokedAll(revoked_count=len(key_ids), revoked_api_keys=key_ids)


def _listed(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def audit_sentence(entry: AuditEntry) -> str:
    """What the audit log's `details` says of an entry, in GaiaEx's words ("Key created with permissions: [read]")."""
    details = entry.details
    if entry.event is AuditEvent.KEY_CREATED:
        return f"Key created with permissions: {_listed(details.get('permissions', []))}"
    if entry.event is AuditEvent.KEY_UPDATED:
        names = {"label": "label", "permissions": "permissions", "ip_whitelist": "IP whitelist"}
        changes = []
        for name, change in sorted(details.get("changes", {}).items()):
            before, after = change.get("from"), change.get("to")
            if isinstance(before, list):
                changes.append(f"{names.get(name, name)} {_listed(before)} -> {_listed(after or [])}")
            else:
                changes.append(f"{names.get(name, name)} {before!r} -> {after!r}")
        return "Key updated: " + "; ".join(changes) if changes else "Key updated"
    if entry.event is AuditEvent.KEY_ROTATED:
        grace = details.get("grace_seconds", 0)
        return (f"Key rotated: the previous {'public key' if details.get('key_type') == 'ed25519' else 'secret'} "
                + (f"works for {grace} more seconds" if grace else "stopped working at once"))
    if entry.event is AuditEvent.KEY_REVOKED_LEAKED:  # issue 16
        return "Key revoked: its secret was reported leaked by GitHub secret scanning"
    if entry.event is AuditEvent.KEY_REVOKED_OPERATOR:
        return "Key revoked by the exchange's security team"
    return "Key revoked (all keys revoked)" if details.get("reason") == "revoke_all" else "Key revoked"


def _audit_data(details: dict[str, Any]) -> dict[str, Any]:
    """An entry's structured detail, its times written as GaiaEx writes times (as the create answered them)."""
    data = dict(details)
    for name in ("expires_at", "previous_valid_until"):
        if isinstance(data.get(name), str):
            data[name] = iso(datetime.fromisoformat(data[name]), timespec=GaiaExResponse.TIMESPEC)
    return data


def present_audit(audit: KeyAudit, context: Presentation) -> AuditLog:
    entries = [AuditEntryView(action=entry.event, ip_address=entry.ip_address, created_at=entry.created_at,
                              details=audit_sentence(entry), data=_audit_data(entry.details))
               for entry in audit.entries]
    return AuditLog(api_key=audit.record.key_id, audit=entries, count=len(entries))


# --------------------------------------------------------------------- routes
_BAD_BODY = (ErrorCode.INVALID_REQUEST, ErrorCode.MALFORMED_JSON, ErrorCode.PAYLOAD_TOO_LARGE)
_STEP_UP = (ErrorCode.STEP_UP_REQUIRED,)
_PREREQUISITES = (ErrorCode.ONBOARDING_REQUIRED, ErrorCode.TRADING_HANDSHAKE_REQUIRED)
_RACE = (ErrorCode.CONCURRENT_MODIFICATION,)
_TAG = "gaiaex"
_KEY = ("api_key", Target.KEY_ID)

CREATE_API_KEY = Route(
    "CreateApiKeyFunction", "POST", "/v1/trade/api-keys", Auth.SESSION,
    operation_id="createApiKey", summary="Create an API key; the secret is in this response only.", tag=_TAG,
    response_model=CreatedApiKey, present=present_created,
    request_model=CreateApiKeyRequest, empty_body_means={}, step_up=Action.CREATE,
    refusals=(*_BAD_BODY, ErrorCode.KEY_LIMIT_REACHED, *_STEP_UP, *_PREREQUISITES, *_RACE),
    request_examples={"GaiaEx's example": {"label": "trading-bot-v1", "permissions": ["read", "trade"],
                                           "ip_whitelist": ["203.0.113.50"], "expires_days": 90},
                      "read-only default": {},
                      "an Ed25519 key (no secret)": {"label": "ed25519-bot", "permissions": ["read", "trade"],
                                                     "key_type": "ed25519",
                                                     "public_key": "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="}})
LIST_API_KEYS = Route(
    "ListApiKeysFunction", "GET", "/v1/trade/api-keys", Auth.SESSION,
    operation_id="listApiKeys", summary="The caller's keys, newest first; never a secret.", tag=_TAG,
    response_model=ApiKeyList, present=present_list)
UPDATE_API_KEY = Route(
    "UpdateApiKeyFunction", "PATCH", "/v1/trade/api-keys/{api_key}", Auth.SESSION,
    operation_id="updateApiKey", summary="Change label, permissions or ip_whitelist.", tag=_TAG,
    response_model=UpdatedApiKey, present=present_updated, request_model=UpdateApiKeyRequest,
    step_up=Action.UPDATE, target=_KEY,
    refusals=(*_BAD_BODY, ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED, *_STEP_UP, *_PREREQUISITES,
              ErrorCode.KEY_NOT_FOUND, *_RACE),
    request_examples={"GaiaEx's example": {"permissions": ["read"]}, "rename": {"label": "market maker v2"},
                      "lift the IP restriction": {"ip_whitelist": []}})
REVOKE_API_KEY = Route(
    "RevokeApiKeyFunction", "DELETE", "/v1/trade/api-keys/{api_key}", Auth.SESSION,
    operation_id="revokeApiKey", summary="Revoke one key, irreversibly (a second revoke answers 200).", tag=_TAG,
    response_model=RevokedApiKey, present=present_revoked, step_up=Action.REVOKE, target=_KEY,
    refusals=(*_STEP_UP, ErrorCode.KEY_NOT_FOUND, *_RACE))
REVOKE_ALL_API_KEYS = Route(
    "RevokeAllApiKeysFunction", "DELETE", "/v1/trade/api-keys/all", Auth.SESSION,
    operation_id="revokeAllApiKeys", summary="Revoke every key of the caller (emergency).", tag=_TAG,
    response_model=RevokedAll, present=present_revoked_all, step_up=Action.REVOKE_ALL, refusals=(*_STEP_UP, *_RACE))
GET_API_KEY_AUDIT = Route(
    "GetApiKeyAuditFunction", "GET", "/v1/trade/api-keys/{api_key}/audit", Auth.SESSION,
    operation_id="getApiKeyAudit", summary="A key's lifecycle log, newest first.", tag=_TAG,
    response_model=AuditLog, present=present_audit, target=_KEY,
    query=(QueryInteger("limit", default=20, minimum=1, maximum=100,
                        description="Number of audit entries to return, newest first."),),
    refusals=(ErrorCode.INVALID_REQUEST, ErrorCode.KEY_NOT_FOUND))

# Issue 15: rotation with a grace period (docs/architecture.md, "Rotation").
ROTATE_API_KEY = Route(
    "RotateApiKeyFunction", "POST", "/v1/trade/api-keys/{api_key}/rotate", Auth.SESSION,
    operation_id="rotateApiKey", summary="Give a key a new secret (or, for an Ed25519 key, the public key sent); "
                                         "the previous one works until the grace ends.", tag=_TAG,
    response_model=RotatedApiKey, present=present_rotated, request_model=RotateApiKeyRequest, empty_body_means={},
    step_up=Action.ROTATE, target=_KEY,
    refusals=(*_BAD_BODY, ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED, *_STEP_UP, ErrorCode.KEY_NOT_FOUND, *_RACE),
    request_examples={"default grace (an hour)": {}, "a leaked secret: no grace": {"grace_seconds": 0},
                      "an Ed25519 key": {"grace_seconds": 600,
                                         "public_key": "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="}})

ROUTES: tuple[Route, ...] = (CREATE_API_KEY, LIST_API_KEYS, UPDATE_API_KEY, REVOKE_API_KEY, REVOKE_ALL_API_KEYS,
                             GET_API_KEY_AUDIT, ROTATE_API_KEY)
