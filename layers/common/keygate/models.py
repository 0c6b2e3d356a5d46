"""Pydantic models: request bodies and response shapes (what is stored is keygate.records).

Field names follow GaiaEx (snake_case, `api_key`, `ip_whitelist`, ...), with
ZDEX's `key_prefix` and 50-character label. Validation that depends on the
deployment (which permissions are allowed) reads the allowed set from the
validation context (`validation_context`), so the models stay free of
configuration lookups.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict, SkipJsonSchema

from keygate.config import KNOWN_PERMISSIONS, KeyPolicy
from keygate.records import AuditEvent, iso

LABEL_MAX_CHARS = 50
IP_WHITELIST_MAX_ENTRIES = 30
# A key that may withdraw funds must be pinned to the owner's own networks: a handful of /1
# blocks would otherwise be a "whitelist" that admits every address.
WITHDRAW_MIN_PREFIX = {4: 24, 6: 48}
EXPIRES_DAYS_MAX = 3650
_IP_ENTRY_MAX_CHARS = 64
_FORBIDDEN_LABEL_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Letters, symbols and marks that render blank or not at all (Unicode's Default_Ignorable_Code_Point
# outside the categories above, and blank glyphs), so a label cannot be spoofed blank with them.
_BLANK_LABEL_CHARS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
                               "\U0001d159")
_COMBINING_CATEGORIES = {"Mn", "Me"}
LABEL_MAX_MARKS_PER_CHARACTER = 2  # combining marks and variation selectors on one base character
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))

SAVE_SECRET_MESSAGE = (
    "Save your API secret now: it is shown only once and cannot be recovered. "  # noqa: S105  # nosec B105  # advice
    "If you lose it, revoke this key and create a new one."
)


# ----------------------------------------------------------------- field rules
def normalise_label(value: str) -> str:
    """Trimmed, at most LABEL_MAX_CHARS, and visible: "" (no label) or text that cannot render blank."""
    label = value.strip()
    if value and not label:
        raise ValueError('label is only whitespace: send visible characters, or "" for no label')
    if len(label) > LABEL_MAX_CHARS:
        raise ValueError(f"label must be at most {LABEL_MAX_CHARS} characters")
    base: str | None = None  # the character the following marks combine with
    marks = 0
    for char in label:
        if unicodedata.category(char) in _FORBIDDEN_LABEL_CATEGORIES or char in _BLANK_LABEL_CHARS:
            raise ValueError(f"label must not contain control, invisible or blank characters (U+{ord(char):04X})")
        if unicodedata.category(char) not in _COMBINING_CATEGORIES:
            base, marks = char, 0
            continue
        marks += 1
        selector = any(ord(char) in selectors for selectors in _VARIATION_SELECTORS)
        if base is None or base.isspace() or marks > LABEL_MAX_MARKS_PER_CHARACTER or (selector and marks > 1):
            raise ValueError(f"label: a combining mark or variation selector (U+{ord(char):04X}) must follow a "
                             f"visible character directly, at most {LABEL_MAX_MARKS_PER_CHARACTER} per character")
    return label


def normalise_permissions(values: list[str], allowed: tuple[str, ...]) -> list[str]:
    if not values:
        raise ValueError("permissions must name at least one permission")
    seen: set[str] = set()
    for value in values:
        if value not in KNOWN_PERMISSIONS:
            raise ValueError(f"unknown permission {value!r}; known permissions are {', '.join(KNOWN_PERMISSIONS)}")
        if value in seen:
            raise ValueError(f"permission {value!r} is listed twice")
        if value not in allowed:
            raise ValueError(f"permission {value!r} is not enabled on this exchange")
        seen.add(value)
    # Stored and returned in the canonical order, whatever order was sent.
    return [permission for permission in KNOWN_PERMISSIONS if permission in seen]


def normalise_ip_entry(value: str) -> str:
    if len(value) > _IP_ENTRY_MAX_CHARS or not value.strip():
        raise ValueError(f"{value[:_IP_ENTRY_MAX_CHARS]!r} is not an IP address or CIDR block")
    text = value.strip()
    if "%" in text:  # an IPv6 zone names an interface of the client's host, never a remote address
        raise ValueError(f"{text!r} has an IPv6 zone (%...); give the address without it")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            raise ValueError(f"{text!r} has host bits set; did you mean "
                             f"{ipaddress.ip_network(text, strict=False)}?") from None
        raise ValueError(f"{text!r} is not an IP address or CIDR block") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None \
            and network.prefixlen >= 96:
        # The authorizer sees an IPv4-mapped client as IPv4, so the entry is stored as IPv4 too.
        network = ipaddress.IPv4Network((network.network_address.ipv4_mapped, network.prefixlen - 96))
    if network.prefixlen == 0:
        raise ValueError(f"{text!r} allows every address; omit ip_whitelist for an unrestricted key")
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def normalise_ip_whitelist(values: list[str]) -> list[str]:
    if len(values) > IP_WHITELIST_MAX_ENTRIES:
        raise ValueError(f"ip_whitelist holds at most {IP_WHITELIST_MAX_ENTRIES} entries")
    normalised: list[str] = []
    for value in values:
        entry = normalise_ip_entry(value)
        if entry not in normalised:
            normalised.append(entry)
    return normalised


def check_withdraw_whitelist(permissions: list[str], ip_whitelist: list[str]) -> None:
    """The withdraw permission needs a whitelist of narrow entries (normalised ones)."""
    if "withdraw" not in permissions:
        return
    if not ip_whitelist:
        raise ValueError("the withdraw permission requires a non-empty ip_whitelist")
    for entry in ip_whitelist:
        network = ipaddress.ip_network(entry)
        if network.prefixlen < WITHDRAW_MIN_PREFIX[network.version]:
            raise ValueError(f"with the withdraw permission each ip_whitelist entry must be at most a "
                             f"/{WITHDRAW_MIN_PREFIX[4]} (IPv4) or /{WITHDRAW_MIN_PREFIX[6]} (IPv6) block; "
                             f"{entry!r} is wider")


def validation_context(policy: KeyPolicy) -> dict[str, Any]:
    """What request validation needs from the deployment: the permissions keys may hold."""
    return {"allowed_permissions": policy.allowed_permissions}


def _allowed_from(info: ValidationInfo) -> tuple[str, ...]:
    # A caller that passes no context (docs, tests) gets the default stack's rule, never "everything allowed".
    allowed = (info.context or {}).get("allowed_permissions")
    return tuple(allowed) if allowed is not None else KeyPolicy.allowed_permissions


# ------------------------------------------------------------------ requests
# The validators' rules stated as JSON Schema for docs/openapi.json. They change
# the schema only: the validators above still decide (and normalise).
_LABEL_SCHEMA: JsonDict = {
    "maxLength": LABEL_MAX_CHARS,
    "description": f"At most {LABEL_MAX_CHARS} characters after trimming; no control or invisible characters."}
_PERMISSIONS_SCHEMA: JsonDict = {
    "items": {"type": "string", "enum": list(KNOWN_PERMISSIONS)}, "minItems": 1, "uniqueItems": True,
    "description": "withdraw only where the stack enables it, and only with an ip_whitelist."}
_IP_WHITELIST_SCHEMA: JsonDict = {
    "items": {"type": "string", "minLength": 1, "maxLength": _IP_ENTRY_MAX_CHARS},
    "maxItems": IP_WHITELIST_MAX_ENTRIES,
    "description": "IPv4/IPv6 addresses and CIDR blocks; 0.0.0.0/0 and ::/0 are refused."}


def _partial_update_schema(schema: JsonDict) -> None:
    # At least one field (_something_to_change); null is refused (_no_nulls): a field
    # left out keeps its current value, so none has a default.
    schema["minProperties"] = 1
    properties = schema.get("properties")
    for field_schema in properties.values() if isinstance(properties, dict) else ():
        if isinstance(field_schema, dict):
            field_schema.pop("default", None)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class CreateApiKeyRequest(_Request):
    label: StrictStr = Field(default="", json_schema_extra=_LABEL_SCHEMA)
    permissions: list[StrictStr] = Field(default_factory=lambda: ["read"],
                                         json_schema_extra=_PERMISSIONS_SCHEMA)
    ip_whitelist: list[StrictStr] = Field(default_factory=list, json_schema_extra=_IP_WHITELIST_SCHEMA)
    expires_days: Annotated[StrictInt, Field(ge=1, le=EXPIRES_DAYS_MAX)] | None = None

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        return normalise_label(value)

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return normalise_permissions(value, _allowed_from(info))

    @field_validator("ip_whitelist")
    @classmethod
    def _ip_whitelist(cls, value: list[str]) -> list[str]:
        return normalise_ip_whitelist(value)

    @model_validator(mode="after")
    def _withdraw_needs_whitelist(self) -> CreateApiKeyRequest:
        check_withdraw_whitelist(self.permissions, self.ip_whitelist)
        return self


class UpdateApiKeyRequest(_Request):
    """Any subset of the mutable fields; `ip_whitelist: []` removes the restriction."""

    model_config = ConfigDict(json_schema_extra=_partial_update_schema)

    label: StrictStr | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_LABEL_SCHEMA)
    permissions: list[StrictStr] | SkipJsonSchema[None] = Field(default=None,
                                                                json_schema_extra=_PERMISSIONS_SCHEMA)
    ip_whitelist: list[StrictStr] | SkipJsonSchema[None] = Field(default=None,
                                                                 json_schema_extra=_IP_WHITELIST_SCHEMA)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("label", "permissions", "ip_whitelist"):
                if name in data and data[name] is None:
                    raise ValueError(f"{name} must not be null; leave it out to keep the current value")
        return data

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return None if value is None else normalise_label(value)

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return None if value is None else normalise_permissions(value, _allowed_from(info))

    @field_validator("ip_whitelist")
    @classmethod
    def _ip_whitelist(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_ip_whitelist(value)

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateApiKeyRequest:
        if not self.model_fields_set:
            raise ValueError("send at least one of label, permissions, ip_whitelist")
        return self

    def requested_changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


# ----------------------------------------------------------------- responses
class _Response(BaseModel):
    @field_serializer("*", when_used="json")
    def _timestamps(self, value: Any) -> Any:
        return iso(value) if isinstance(value, datetime) else value


class ApiKeyView(_Response):
    """A key as lists show it: never a secret."""

    api_key: str
    key_prefix: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    is_active: bool


class CallingApiKey(_Response):
    """What a bot may learn about the key it signs with (like Binance's API restrictions)."""

    api_key: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: datetime
    expires_at: datetime | None


class CreatedApiKey(_Response):
    api_key: str
    api_secret: str = Field(repr=False)  # never in a repr, a log line or a validation error
    key_prefix: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: datetime
    expires_at: datetime | None
    message: str = SAVE_SECRET_MESSAGE


class ApiKeyList(_Response):
    api_keys: list[ApiKeyView]
    count: int


class UpdatedApiKey(_Response):
    api_key: str
    updated_fields: list[str]
    label: str
    permissions: list[str]
    ip_whitelist: list[str]


class RevokedApiKey(_Response):
    api_key: str
    is_active: bool = False
    revoked_at: datetime
    already_revoked: bool


class RevokedAll(_Response):
    revoked_count: int
    revoked_api_keys: list[str]


class AuditEntryView(_Response):
    """One lifecycle change of a key, as the audit log shows it."""

    event: AuditEvent
    api_key: str
    ip_address: str
    created_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class AuditLog(_Response):
    api_key: str
    entries: list[AuditEntryView]


class ServerTime(BaseModel):
    """GET /v1/time: the server's clock in milliseconds since the Unix epoch, for signing bots."""

    server_time: int


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every refusal, from a handler (api.error_response) or from API Gateway (Gateway Responses)."""

    # `"ok": false` beside `"error"`, the uniform shape every error body moves to; the authorizers' refusals
    # (the ACCESS_DENIED and UNAUTHORIZED Gateway Responses) carry it already. Optional until all do.
    ok: Literal[False] = False
    error: ErrorDetail
