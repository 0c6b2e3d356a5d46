"""Every partition and sort key KeyGate writes (the keys table's and the nonces table's), and how records
become items and back.

The table's layout, and why each item is where it is, is described once in
docs/architecture.md ("Data model"); this module is the code that builds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from keygate import records  # records.AuditEntry, ...: on first use (docs/architecture.md, "Cold start")
from keygate.records import HMAC_SHA256, ApiKeyRecord, Credential, KeyStatus
from keygate.storage import attribute_values

if TYPE_CHECKING:
    from keygate.records import AccountState, AuditEntry, AuditEvent, DueNotice

KEYSET = "KEYSET"
ACCOUNT = "ACCOUNT"
CLEANUP_PARTITION = "SECRET_CLEANUP"
EXPIRY_PARTITION = "EXPIRY_NOTICES"  # expiry notices by due time (docs/architecture.md, "Expiry notices")
_KEY_PREFIX = "KEY#"
_USAGE_PREFIX = "USAGE#"


# ------------------------------------------------------------------ the keys
def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def key_sk(key_id: str) -> str:
    return f"{_KEY_PREFIX}{key_id}"


def handle_sk(handle: str) -> str:
    return f"HANDLE#{handle}"


def usage_pk(user_id: str) -> str:
    """The partition of a user's usage items (last use per key): the only partitions the signature
    authorizer may update, which IAM names by this prefix (dynamodb:LeadingKeys)."""
    return f"{_USAGE_PREFIX}{user_id}"


def usage_key(user_id: str, key_id: str) -> dict[str, Any]:
    return key(usage_pk(user_id), key_id)


def pointer_key(key_id: str) -> dict[str, Any]:
    return key(f"{_KEY_PREFIX}{key_id}", "KEY")


def audit_pk(key_id: str) -> str:
    return f"AUDIT#{key_id}"


def audit_sk(version: int, at: datetime, unique: str) -> str:
    # Ordered by the version the change commits, not by time: a request that lost
    # a race commits after others with the time it started at.
    return f"{version:010d}#{stored_time(at)}#{unique}"


def step_up_key(jti: str) -> dict[str, Any]:
    return key(f"STEPUP#{jti}", "STEPUP")


def nonce_key(key_id: str, nonce: str) -> dict[str, Any]:
    """A used nonce's key in the nonces table (a partition key only: neither part contains '#')."""
    return {"pk": {"S": f"{key_id}#{nonce}"}}


def cleanup_sk(key_id: str, due: datetime, secret_version: str | None = None) -> str:
    """`<due ms>#<key id>`: every secret of the key; `<due ms>#<key id>#<version>`: one rotated-away secret."""
    return f"{epoch_ms(due):013d}#{key_id}" + (f"#{secret_version}" if secret_version is not None else "")


def cleanup_due_upto(now: datetime) -> str:
    """The greatest cleanup sort key due at `now`."""
    return f"{epoch_ms(now):013d}~"


def cleanup_due(sort_key: str) -> datetime:
    return datetime.fromtimestamp(int(sort_key.split("#", 1)[0]) / 1000, UTC)


def expiry_sk(key_id: str, notice: str, due: datetime) -> str:
    return f"{epoch_ms(due):013d}#{key_id}#{notice}"


def expiry_due_upto(now: datetime) -> str:
    """The greatest expiry-notice sort key due at `now`."""
    return f"{epoch_ms(now):013d}~"


def notice_key(key_id: str, notice: str, expires_at: datetime) -> dict[str, Any]:
    """A sent expiry notice: one per key, notice and expiry date (a second put of it fails its condition)."""
    return key(f"NOTICE#{key_id}", f"{notice}#{stored_time(expires_at)}")


def item_kind(values: dict[str, Any]) -> str:
    """What a user-partition item is: "key", "usage" (a last use an earlier version kept there, read but
    no longer written), "account", "keyset" or "other"."""
    sk = values["sk"]
    if sk.startswith(_KEY_PREFIX):
        return "key"
    if sk.startswith(_USAGE_PREFIX):
        return "usage"
    return {ACCOUNT: "account", KEYSET: "keyset"}.get(sk, "other")


def usage_key_id(values: dict[str, Any]) -> str:
    """The key id of a usage item: its sort key (in the user partition, an earlier version's USAGE#<key id>)."""
    return str(values["sk"]).removeprefix(_USAGE_PREFIX)


# --------------------------------------------------------------------- codec
def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def stored_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def optional_time(moment: datetime | None) -> str | None:
    return None if moment is None else stored_time(moment)


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: attribute_values.serialize(value) for name, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(attribute_values.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(entry) for entry in value]
    if isinstance(value, dict):
        return {name: _plain(entry) for name, entry in value.items()}
    return value


# ------------------------------------------------------------------- records
def record_item(record: ApiKeyRecord) -> dict[str, Any]:
    return to_item({
        "pk": user_pk(record.user_id),
        "sk": key_sk(record.key_id),
        "type": "key",
        "key_id": record.key_id,
        "user_id": record.user_id,
        "label": record.label,
        "permissions": list(record.permissions),
        "ip_whitelist": list(record.ip_whitelist),
        "status": record.status.value,
        "created_at": stored_time(record.created_at),
        "expires_at": optional_time(record.expires_at),
        "revoked_at": optional_time(record.revoked_at),
        "last_used_at": optional_time(record.last_used_at),
        "version": record.version,
        "handle": record.handle or None,
        "change_id": record.change_id or None,
        "key_type": record.key_type,
        "public_key": record.public_key,
        "secret_version": record.secret_version or None,
        "grace": None if record.grace is None else {
            name: value for name, value in (("valid_until", stored_time(record.grace.valid_until)),
                                            ("secret_version", record.grace.secret_version),
                                            ("public_key", record.grace.public_key)) if value is not None},
    })


def record_from(values: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=values["key_id"],
        user_id=values["user_id"],
        label=values.get("label", ""),
        permissions=list(values.get("permissions", [])),
        ip_whitelist=list(values.get("ip_whitelist", [])),
        status=KeyStatus(values["status"]),
        created_at=datetime.fromisoformat(values["created_at"]),
        expires_at=parse_time(values.get("expires_at")),
        revoked_at=parse_time(values.get("revoked_at")),
        last_used_at=parse_time(values.get("last_used_at")),
        version=values.get("version", 1),
        handle=values.get("handle", ""),
        change_id=values.get("change_id", ""),
        key_type=values.get("key_type", HMAC_SHA256),
        public_key=values.get("public_key"),
        secret_version=values.get("secret_version", ""),
        grace=_credential(values.get("grace")),
    )


def _credential(values: dict[str, Any] | None) -> Credential | None:
    if not values:
        return None
    return Credential(valid_until=datetime.fromisoformat(values["valid_until"]),
                      secret_version=values.get("secret_version", ""), public_key=values.get("public_key"))


def handle_item(record: ApiKeyRecord) -> dict[str, Any]:
    """The user's pointer from a key's handle to its id (the handle is not the record's sort key)."""
    return to_item({"pk": user_pk(record.user_id), "sk": handle_sk(record.handle), "type": "key_handle",
                    "key_id": record.key_id})


def pointer_item(record: ApiKeyRecord) -> dict[str, Any]:
    return {**pointer_key(record.key_id), **to_item({"type": "key_pointer", "user_id": record.user_id})}


def account_item(user_id: str, state: AccountState) -> dict[str, Any]:
    return to_item({"pk": user_pk(user_id), "sk": ACCOUNT, "type": "account",
                    "onboarding_completed": state.onboarding_completed,
                    "trading_handshake_completed": state.trading_handshake_completed})


def account_from(values: dict[str, Any]) -> AccountState:
    return records.AccountState(onboarding_completed=bool(values.get("onboarding_completed", False)),
                                trading_handshake_completed=bool(values.get("trading_handshake_completed", False)))


def _entry_sk(entry: AuditEntry, changed: ApiKeyRecord) -> str:
    # Named by the change's `change_id`: the same key for the entry and for the check that it was written
    return audit_sk(changed.version, entry.created_at, changed.change_id)


def audit_key(entry: AuditEntry, changed: ApiKeyRecord) -> dict[str, Any]:
    """Where the audit entry of the change that gave `changed` its version is."""
    return key(audit_pk(entry.api_key), _entry_sk(entry, changed))


def audit_item(entry: AuditEntry, changed: ApiKeyRecord) -> dict[str, Any]:
    """The audit entry of the change that gave `changed` its version."""
    return to_item({
        "pk": audit_pk(entry.api_key),
        "sk": _entry_sk(entry, changed),
        "type": "audit",
        "user_id": changed.user_id,
        "event": entry.event.value,
        "api_key": entry.api_key,
        "label": changed.label,  # the key's label after the change, for the lifecycle event
        "ip_address": entry.ip_address,
        "created_at": stored_time(entry.created_at),
        "details": entry.details,
    })


def audit_from(values: dict[str, Any]) -> AuditEntry:
    return records.AuditEntry(event=records.AuditEvent(values["event"]), api_key=values["api_key"],
                              ip_address=values["ip_address"], created_at=datetime.fromisoformat(values["created_at"]),
                              details=values.get("details", {}))


def cleanup_item(key_id: str, due: datetime, reason: str, secret_version: str | None = None) -> dict[str, Any]:
    return to_item({"pk": CLEANUP_PARTITION, "sk": cleanup_sk(key_id, due, secret_version), "type": "secret_cleanup",
                    "key_id": key_id, "reason": reason, "secret_version": secret_version})


def expiry_item(record: ApiKeyRecord, notice: str, due: datetime) -> dict[str, Any]:
    """An expiry notice due at `due` for the record's expiry (`notice`: keygate.records.EXPIRY_NOTICES)."""
    return to_item({"pk": EXPIRY_PARTITION, "sk": expiry_sk(record.key_id, notice, due), "type": "expiry_notice_due",
                    "key_id": record.key_id, "user_id": record.user_id, "notice": notice,
                    "expires_at": optional_time(record.expires_at)})


def expiry_from(values: dict[str, Any]) -> DueNotice:
    return records.DueNotice(key_id=values["key_id"], user_id=values["user_id"], notice=values["notice"],
                             expires_at=datetime.fromisoformat(values["expires_at"]),
                             due=datetime.fromtimestamp(int(values["sk"].split("#", 1)[0]) / 1000, UTC))


def notice_item(record: ApiKeyRecord, notice: DueNotice, now: datetime) -> dict[str, Any]:
    """The record of a sent notice, shaped as an audit entry (the publisher reads both alike); no IP: no
    request made it."""
    return {**notice_key(record.key_id, notice.notice, notice.expires_at), **to_item({
        "type": "notice", "user_id": record.user_id, "event": notice.event.value, "api_key": record.key_id,
        "label": record.label, "ip_address": "", "created_at": stored_time(now), "details": notice.details()})}


def step_up_item(jti: str, expires_at_epoch: int, change_id: str) -> dict[str, Any]:
    """A spent step-up token, naming the change that spent it."""
    return {**step_up_key(jti), **to_item({"type": "step_up", "expires_ttl": expires_at_epoch,
                                           "change_id": change_id})}


def step_up_put(table: str, jti: str, expires_at_epoch: int, change_id: str, now: datetime) -> dict[str, Any]:
    """The spent step-up token as a transaction item that fails if the token was spent already."""
    # DynamoDB deletes expired items late, so an expired record must not count.
    return {"Put": {"TableName": table, "Item": step_up_item(jti, expires_at_epoch, change_id),
                    "ConditionExpression": "attribute_not_exists(pk) OR expires_ttl < :now",
                    "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}}}}


def nonce_item(key_id: str, nonce: str, expires_at_ms: int, writer: str) -> dict[str, Any]:
    """A used nonce; `writer` is the one invocation's random token that recorded it (`nonce_writer`)."""
    return {**nonce_key(key_id, nonce),
            **to_item({"expires_at_ms": expires_at_ms, "expires_ttl": expires_at_ms // 1000 + 1, "writer": writer})}


def nonce_writer(item: dict[str, Any] | None) -> str | None:
    """The `writer` of a nonce item as DynamoDB returned it (typed values), if any."""
    return ((item or {}).get("writer") or {}).get("S")


# ------------------------------------------ issue 16: events in, leaks, operators
def account_audit_pk(user_id: str) -> str:
    """The audit partition of a user's account events (onboarding, trading handshake)."""
    return f"AUDIT#ACCOUNT#{user_id}"


def onboarding_order(nonce: int, wallet_address: str) -> str:
    """Orders agent authorizations: the newest (highest nonce) wins, whatever order events arrive in."""
    return f"{nonce:020d}#{wallet_address.lower()}"


def first_trade_order(executed_at: datetime, trade_id: str) -> str:
    """Orders trades: the earliest is the handshake, whatever order events arrive in."""
    return f"{epoch_ms(executed_at):015d}#{trade_id}"


def onboarding_update(user_id: str, wallet_address: str, nonce: int, now: datetime) -> dict[str, Any]:
    """UpdateItem arguments (without TableName) recording a verified authorization on the account item,
    unless one with a higher nonce is recorded (a duplicate or late event changes nothing)."""
    return {
        "Key": key(user_pk(user_id), ACCOUNT),
        "UpdateExpression": "SET #type = :type, onboarding_completed = :true, wallet_address = :wallet, "
                            "onboarded_at = :now, onboarding_order = :order",
        "ConditionExpression": "attribute_not_exists(onboarding_order) OR onboarding_order < :order",
        "ExpressionAttributeNames": {"#type": "type"},
        "ExpressionAttributeValues": to_item({":type": "account", ":true": True, ":wallet": wallet_address.lower(),
                                              ":now": stored_time(now),
                                              ":order": onboarding_order(nonce, wallet_address)}),
    }


def trade_update(user_id: str, trade_id: str, executed_at: datetime, now: datetime) -> dict[str, Any]:
    """UpdateItem arguments recording the trading handshake, unless an earlier trade is recorded."""
    return {
        "Key": key(user_pk(user_id), ACCOUNT),
        "UpdateExpression": "SET #type = :type, trading_handshake_completed = :true, first_trade_id = :trade, "
                            "first_trade_at = :at, handshake_recorded_at = :now, first_trade_order = :order",
        "ConditionExpression": "attribute_not_exists(first_trade_order) OR first_trade_order > :order",
        "ExpressionAttributeNames": {"#type": "type"},
        "ExpressionAttributeValues": to_item({":type": "account", ":true": True, ":trade": trade_id,
                                              ":at": stored_time(executed_at), ":now": stored_time(now),
                                              ":order": first_trade_order(executed_at, trade_id)}),
    }


def account_audit_item(user_id: str, event: AuditEvent, now: datetime, details: dict[str, Any],
                       unique: str) -> dict[str, Any]:
    return to_item({"pk": account_audit_pk(user_id), "sk": f"{stored_time(now)}#{unique}", "type": "audit",
                    "user_id": user_id, "event": event.value, "ip_address": "exchange-event",
                    "created_at": stored_time(now), "details": details})


def fingerprint_key(fingerprint: str) -> dict[str, Any]:
    return key(f"SECRETHASH#{fingerprint}", "SECRETHASH")


def fingerprint_item(fingerprint: str, record: ApiKeyRecord) -> dict[str, Any]:
    """A secret's fingerprint (keygate.keys.secret_fingerprint) pointing at its key: written with every secret
    issued (create, rotation), never removed, so a leaked old secret still finds its key."""
    return {**fingerprint_key(fingerprint), **to_item({"type": "secret_fingerprint", "key_id": record.key_id,
                                                        "user_id": record.user_id})}
