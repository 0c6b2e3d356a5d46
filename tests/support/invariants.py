"""docs/product.md's data invariants, checked against everything stored in moto.

One implementation for every test that needs them (fault injection,
concurrency, API tests). `check_invariants()` reads the whole table and every
secret with clients of its own (a test-only Scan; the service never scans;
pointed at the stack's AWS_ENDPOINT_URL when there is one, e.g. a moto server),
and fails with the list of every violation it found:

- every key record has its pointer and every pointer its record;
- no active key without its secret (invariant 4);
- no secret without an active key: before the janitor has run, only a secret
  whose deletion is queued in the cleanup outbox may lack one; once `settled`
  (the janitor ran after every entry fell due), none may, and the outbox is empty;
- no change without its audit entry and no entry without its change
  (invariant 3): replaying each key's audit log in its stored order (one
  entry per committed version) gives its stored record (metadata, version,
  status, revocation time), and nothing follows a revocation;
- at most the limit of active keys per user, and one keyset version bump per
  key created (invariant 2);
- no secret value anywhere in the table (invariant 5).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3

from keygate.config import KeyPolicy, StorageConfig
from keygate.records import ApiKeyRecord, KeyStatus, iso, secret_ref
from keygate.storage import layout
from tests.support.stack import REGION

TRACKED_FIELDS = ("label", "permissions", "ip_whitelist")


@dataclass
class StoredState:
    keys: dict[str, ApiKeyRecord]  # by key id
    pointers: dict[str, str]  # key id -> user id
    audit: dict[str, list[dict[str, Any]]]  # key id -> entries in stored order, oldest first
    keyset_versions: dict[str, int]  # user id -> version
    cleanup_key_ids: list[str]  # one per outbox entry
    secrets: dict[str, str]  # records.secret_ref (key id, or key id/version for a rotation's) -> secret value
    items: list[dict[str, Any]]
    # (key id, secret version or None for every secret of the key), one per outbox entry
    cleanup_entries: set[tuple[str, str | None]] = field(default_factory=set)

    def active_keys(self, user_id: str, now: datetime) -> list[ApiKeyRecord]:
        return [record for record in self.keys.values() if record.user_id == user_id and record.is_active(now)]


def aws_client(service: str) -> Any:
    """A test-side client (never the layer's, which faults may hit) for the stack's endpoint."""
    return _cached_client(service, StorageConfig.from_environ().aws_endpoint_url)


@lru_cache(maxsize=8)
def _cached_client(service: str, endpoint_url: str | None) -> Any:
    # Creating a client costs more than reading a whole test's state.
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url)


def _table_items(dynamodb: Any) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=StorageConfig.from_environ().table_name,
                                                     ConsistentRead=True)
    return [layout.from_item(item) for page in pages for item in page["Items"]]


def stored_state() -> StoredState:
    """Everything stored, read with the test's own clients."""
    items = _table_items(aws_client("dynamodb"))
    keys, pointers, audit = {}, {}, defaultdict(list)
    keyset_versions, cleanup, cleanup_versions = {}, [], set()
    for item in sorted(items, key=lambda entry: (entry["pk"], entry["sk"])):
        pk, sk = item["pk"], item["sk"]
        if pk.startswith("USER#") and sk.startswith("KEY#"):
            record = layout.record_from(item)
            keys[record.key_id] = record
        elif pk.startswith("USER#") and sk == "KEYSET":
            keyset_versions[pk.removeprefix("USER#")] = item["version"]
        elif pk.startswith("KEY#") and sk == "KEY":
            pointers[pk.removeprefix("KEY#")] = item["user_id"]
        elif pk.startswith("AUDIT#"):
            audit[pk.removeprefix("AUDIT#")].append(item)
        elif pk == layout.CLEANUP_PARTITION:
            cleanup.append(item["key_id"])
            cleanup_versions.add((item["key_id"], item.get("secret_version")))
    return StoredState(keys=keys, pointers=pointers, audit=dict(audit), keyset_versions=keyset_versions,
                       cleanup_key_ids=cleanup, secrets=_secrets(aws_client("secretsmanager")),
                       items=items, cleanup_entries=cleanup_versions)


def _secrets(secretsmanager: Any) -> dict[str, str]:
    """Key id -> secret value of every secret under the stage's prefix."""
    prefix = StorageConfig.from_environ().secret_name_prefix
    names = [secret["Name"] for page in secretsmanager.get_paginator("list_secrets").paginate()
             for secret in page["SecretList"] if secret["Name"].startswith(prefix)]
    return {name.removeprefix(prefix): secretsmanager.get_secret_value(SecretId=name)["SecretString"]
            for name in names}


def violations(state: StoredState, *, settled: bool, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    found: list[str] = []
    found += _pointer_violations(state)
    found += _secret_violations(state, settled=settled)
    for key_id in sorted(set(state.audit) - set(state.keys)):
        found.append(f"audit entries without their change: no key {key_id}")
    for record in state.keys.values():
        found += [f"key {record.key_id}: {problem}" for problem in _audit_problems(record, state.audit.get(
            record.key_id, []))]
    found += _limit_violations(state, now)
    found += _leaked_secrets(state)
    return found


def check_invariants(*, settled: bool, now: datetime | None = None) -> StoredState:
    """Fail with every violated invariant; return what is stored for further checks."""
    state = stored_state()
    problems = violations(state, settled=settled, now=now)
    assert not problems, "invariants violated:\n  " + "\n  ".join(problems)
    return state


def _pointer_violations(state: StoredState) -> list[str]:
    found = []
    for key_id, record in state.keys.items():
        if state.pointers.get(key_id) != record.user_id:
            found.append(f"key {key_id} has no pointer to its user")
    found += [f"pointer without a key record: {key_id}" for key_id in state.pointers if key_id not in state.keys]
    return found


def _verifying(record: ApiKeyRecord, now: datetime) -> list[str]:
    if record.key_type == "ed25519":
        return []
    grace = record.grace_at(now)
    return [record.secret_version] + ([grace.secret_version] if grace is not None else [])


def _secret_violations(state: StoredState, *, settled: bool) -> list[str]:
    # Active means usable now: not revoked and not expired (an expired key's secret is queued for
    # deletion at its expiry; a key that has yet to expire keeps that entry pending).
    now = datetime.now(UTC)
    live = {key_id for key_id, record in state.keys.items() if record.is_active(now)}
    # A live HMAC key's current secret, and its previous one during a rotation's grace; an Ed25519 key has none.
    needed = {secret_ref(key_id, version) for key_id in live for version in _verifying(state.keys[key_id], now)}
    found = [f"active key {name} has no secret" for name in sorted(needed) if name not in state.secrets]
    found += [f"Ed25519 key {key_id} has a secret" for key_id, record in state.keys.items()
              if record.key_type == "ed25519" and any(name.split("/")[0] == key_id for name in state.secrets)]
    for name in state.secrets:
        if name in needed:
            continue
        key_id, _, version = name.partition("/")
        record = state.keys.get(key_id)
        if settled:
            kind = "no key" if record is None else "revoked key" if record.revoked_at else \
                "expired key" if not record.is_active(now) else "rotated-away secret"
            if kind == "rotated-away secret" and (key_id, version) in state.cleanup_entries:
                continue  # its deletion is queued for the end of a grace that had not ended at its rotation
            found.append(f"orphan secret {name} ({kind}) after the janitor ran")
        elif (key_id, None) not in state.cleanup_entries and (key_id, version) not in state.cleanup_entries:
            found.append(f"orphan secret {name} with no cleanup entry: it would live for ever")
    left = sorted(set(state.cleanup_key_ids) - live)
    if settled and left:
        found.append(f"cleanup entries left after the janitor ran: {left}")
    return found


def _audit_problems(record: ApiKeyRecord, entries: list[dict[str, Any]]) -> list[str]:
    """Replay a key's audit log in its stored order (the versions its changes committed)."""
    if not entries or entries[0]["event"] != "key_created":
        return ["the audit log does not start with key_created"]
    problems = []
    for position, entry in enumerate(entries):
        if entry.get("user_id") != record.user_id or entry.get("api_key") != record.key_id:
            problems.append(f"audit entry {entry['sk']} names another key or user")
        if not entry["sk"].startswith(f"{position + 1:010d}#"):
            problems.append(f"audit entry {entry['sk']} is not the change to version {position + 1}")
    events = [entry["event"] for entry in entries]
    if set(events[1:]) - {"key_updated", "key_revoked", "key_rotated"} or "key_revoked" in events[:-1]:
        problems.append(f"audit events out of order: {events} (nothing may follow key_revoked)")
    if record.version != len(entries):
        problems.append(f"version {record.version} but {len(entries)} audit entries "
                        "(a change without its entry, or an entry without its change)")
    creation = entries[0]["details"]
    if creation.get("expires_at") != iso(record.expires_at):
        problems.append("key_created entry disagrees with the record's expiry")
    if entries[0]["created_at"] != layout.stored_time(record.created_at):
        problems.append("key_created entry disagrees with the record's creation time")
    replayed = {name: creation.get(name) for name in TRACKED_FIELDS}
    for entry in entries[1:]:
        for name, change in entry["details"].get("changes", {}).items():
            if replayed.get(name) != change["from"]:
                problems.append(f"audit entry {entry['sk']} changed {name} from {change['from']!r}, "
                                f"but it was {replayed.get(name)!r}")
            replayed[name] = change["to"]
    if replayed != {name: getattr(record, name) for name in TRACKED_FIELDS}:
        problems.append(f"replayed audit log {replayed} differs from the record")
    revoked = events[-1] == "key_revoked"
    if (record.status is KeyStatus.REVOKED) != revoked:
        problems.append(f"status {record.status.value} but the audit log ends with {events[-1]}")
    elif revoked and layout.optional_time(record.revoked_at) != entries[-1]["created_at"]:
        problems.append("key_revoked entry disagrees with the record's revocation time")
    return problems


def _limit_violations(state: StoredState, now: datetime) -> list[str]:
    found = []
    limit = KeyPolicy.from_environ().max_active_keys_per_user
    keys_per_user: dict[str, int] = defaultdict(int)
    for record in state.keys.values():
        keys_per_user[record.user_id] += 1
    for user_id in set(keys_per_user) | set(state.keyset_versions):
        count = keys_per_user[user_id]
        active = len(state.active_keys(user_id, now))
        if active > limit:
            found.append(f"user {user_id} has {active} active keys, limit {limit}")
        if state.keyset_versions.get(user_id, 0) != count:
            found.append(f"user {user_id}: keyset version {state.keyset_versions.get(user_id, 0)} "
                         f"but {count} keys created")
    return found


def _leaked_secrets(state: StoredState) -> list[str]:
    values = set(state.secrets.values())
    found = []
    for item in state.items:
        text = repr(item)
        if any(value in text for value in values):
            found.append(f"a secret is stored in table item {item['pk']} / {item['sk']}")
    return found
