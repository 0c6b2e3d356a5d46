"""What KeyGate stores, as the domain sees it: plain frozen dataclasses, standard library only.

The signature authorizer reads `ApiKeyRecord` on every cold path, so records
carry no validation framework; what goes into them was validated by the request
models (keygate.models) first. The key records are here, the lifecycle's others
in `keygate.records.lifecycle`, imported through this module
(docs/architecture.md, "Cold start").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from keygate import lazy

if TYPE_CHECKING:  # re-exported: imported on first use by __getattr__ below
    from keygate.records.lifecycle import EXPIRY_NOTICES as EXPIRY_NOTICES
    from keygate.records.lifecycle import AccountState as AccountState
    from keygate.records.lifecycle import AuditEntry as AuditEntry
    from keygate.records.lifecycle import AuditEvent as AuditEvent
    from keygate.records.lifecycle import DueNotice as DueNotice
    from keygate.records.lifecycle import NoticeEvent as NoticeEvent
    from keygate.records.lifecycle import Onboarding as Onboarding
    from keygate.records.lifecycle import PendingCleanup as PendingCleanup
    from keygate.records.lifecycle import Trade as Trade
    from keygate.records.lifecycle import UserSnapshot as UserSnapshot


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None, *, timespec: str = "milliseconds") -> str | None:
    """UTC timestamps as the API writes them: ISO 8601 with a Z suffix, to the millisecond unless told."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


HMAC_SHA256 = "hmac-sha256"  # a key whose secret KeyGate holds (in Secrets Manager)
ED25519 = "ed25519"  # a key whose private key only the bot holds; the record carries its public key


def secret_ref(key_id: str, version: str = "") -> str:
    """Which of a key's HMAC secrets: the first is named by the key id alone, a rotated one by key id and
    version (the rotation's change id): `<key id>/<version>` (docs/architecture.md, "Data model")."""
    return f"{key_id}/{version}" if version else key_id


@dataclass(frozen=True)
class Credential:
    """What verifies a key's signatures besides its current secret or public key during a rotation's grace:
    the previous HMAC secret's version, or the previous Ed25519 public key, and when it stops verifying."""

    valid_until: datetime
    secret_version: str = ""
    public_key: str | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    """A key's metadata. Never holds the secret (an Ed25519 key's public key is no secret)."""

    key_id: str
    user_id: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    status: KeyStatus
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    version: int = 1
    handle: str = ""  # the key's opaque, non-secret handle (ZDEX's `id`)
    change_id: str = ""  # the change that wrote this version (docs/architecture.md, "Committed, answer lost")
    key_type: str = HMAC_SHA256  # docs/signing.md, "Key types"
    public_key: str | None = None  # an Ed25519 key's: base64 of its 32 bytes (PEM SubjectPublicKeyInfo in old records)
    secret_version: str = ""  # an HMAC key's current secret (secret_ref); "" the one its create made
    grace: Credential | None = None  # the previous secret or public key, until the rotation's grace ends

    def grace_at(self, now: datetime) -> Credential | None:
        """The previous credential while it still verifies, else None."""
        return self.grace if self.grace is not None and now < self.grace.valid_until else None

    def secret_versions(self) -> list[str]:
        """Every HMAC secret the record names (current first): what a revocation deletes."""
        if self.key_type != HMAC_SHA256:
            return []
        return [self.secret_version] + ([self.grace.secret_version] if self.grace is not None else [])

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def is_active(self, now: datetime) -> bool:
        return self.status is KeyStatus.ACTIVE and not self.is_expired(now)

    def changed(self, **changes: Any) -> ApiKeyRecord:
        return dataclasses.replace(self, **changes)


# What __getattr__ imports from keygate.records.lifecycle on first use.
_LIFECYCLE = ("AccountState", "UserSnapshot", "AuditEvent", "AuditEntry", "EXPIRY_NOTICES", "NoticeEvent", "DueNotice",
              "PendingCleanup", "Onboarding", "Trade")


if not TYPE_CHECKING:  # so that mypy still reports a misspelt name
    __getattr__ = lazy.module_getattr(globals(), "keygate.records.lifecycle", _LIFECYCLE)
