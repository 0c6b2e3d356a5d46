"""What KeyGate stores, as the domain sees it: plain frozen dataclasses, standard library only.

The signature authorizer reads `ApiKeyRecord` on every cold path, so records
carry no validation framework (docs/architecture.md, "Cold start"); what goes
into them was validated by the request models (keygate.models) first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class AccountState:
    """Prerequisites the exchange records for a user (written by its events)."""

    onboarding_completed: bool = False
    trading_handshake_completed: bool = False


@dataclass(frozen=True)
class UserSnapshot:
    """Everything in a user's partition, read at one moment."""

    account: AccountState
    keyset_version: int
    keys: list[ApiKeyRecord] = field(default_factory=list)


class AuditEvent(StrEnum):
    KEY_CREATED = "key_created"
    KEY_UPDATED = "key_updated"
    KEY_REVOKED = "key_revoked"
    KEY_ROTATED = "key_rotated"
    # issue 16: events in, leaks, operators
    KEY_REVOKED_LEAKED = "key_revoked_leaked"  # a secret scanner reported the key's secret
    KEY_REVOKED_OPERATOR = "key_revoked_operator"  # the exchange's security team (IAM-signed request)
    ACCOUNT_ONBOARDED = "account_onboarded"  # a verified EIP-712 agent authorization (AUDIT#ACCOUNT#<user>)
    TRADING_HANDSHAKE_COMPLETED = "trading_handshake_completed"  # the user's first trade (same partition)


@dataclass(frozen=True)
class AuditEntry:
    event: AuditEvent
    api_key: str
    ip_address: str
    created_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


# The expiry notices of a key with an expiry: name -> how long before the expiry it is due.
EXPIRY_NOTICES: dict[str, timedelta] = {"expiring_7d": timedelta(days=7), "expiring_1d": timedelta(days=1),
                                        "expired": timedelta(0)}


class NoticeEvent(StrEnum):
    """Expiry notices (KeyLifecycle.send_expiry_notices): not in a key's audit log, but recorded once per key,
    notice and expiry, and published like audit entries."""

    KEY_EXPIRING = "key_expiring"
    KEY_EXPIRED = "key_expired"


@dataclass(frozen=True)
class DueNotice:
    """An expiry notice whose time has come, for the key's expiry at `expires_at`."""

    key_id: str
    user_id: str
    notice: str  # a name of EXPIRY_NOTICES
    expires_at: datetime
    due: datetime

    @property
    def event(self) -> NoticeEvent:
        return NoticeEvent.KEY_EXPIRED if EXPIRY_NOTICES[self.notice] == timedelta(0) else NoticeEvent.KEY_EXPIRING

    def superseded(self, now: datetime) -> bool:
        """A later notice of the same expiry is due too (a run that comes late): this one is not sent."""
        ahead = EXPIRY_NOTICES[self.notice]
        return any(later < ahead and now >= self.expires_at - later for later in EXPIRY_NOTICES.values())

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"expires_at": iso(self.expires_at)}
        if self.event is NoticeEvent.KEY_EXPIRING:
            details["expires_in_days"] = EXPIRY_NOTICES[self.notice].days
        return details


@dataclass(frozen=True)
class PendingCleanup:
    """A secret whose deletion is due (the janitor's outbox)."""

    key_id: str
    due: datetime
    reason: str
    secret_version: str | None = None  # one secret of the key (a rotation's); None: every secret the key has


@dataclass(frozen=True)
class Onboarding:
    """A verified agent authorization: who, with which wallet, signed when (its nonce, in milliseconds)."""

    user_id: str
    wallet_address: str
    nonce: int
    event_id: str


@dataclass(frozen=True)
class Trade:
    """A trade the exchange reports (its first one completes the trading handshake)."""

    user_id: str
    trade_id: str
    executed_at: datetime
    event_id: str
