"""The records the key lifecycle keeps besides the keys themselves: a user's account state and snapshot, audit
entries, expiry notices, the janitor's pending cleanups, and the exchange's events (onboarding, trades).

Imported through `keygate.records` (docs/architecture.md, "Cold start").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from keygate.records import ApiKeyRecord, iso


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
