"""The KG1 signature authorizer (HMAC-SHA256 and Ed25519 keys): docs/signing.md's checks, in its order.

`SignatureAuthorizer.authorize` takes what API Gateway hands a REQUEST
authorizer and returns a `Decision`; the Lambda handler only turns that into
API Gateway's vocabulary. Every refusal is a Decision with its code and a
message that says what to fix (the bot receives both: docs/signing.md); only
an AWS fault raises. Nothing is read before the cheap checks (headers, clock,
key id checksum) pass, and nothing is written before checks 1-6 pass.
Its caches and the bounds they set are described in docs/architecture.md
("The signature authorizer's caches").
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kg1
from keygate import keys
from keygate.apigw import SignedRequest
from keygate.config import AuthorizerConfig, StorageConfig, is_greedy
from keygate.errors import ErrorCode
from keygate.observability import logger, metrics
from keygate.ports import KeyLookup, NonceReused, SecretReader
from keygate.records import ED25519, HMAC_SHA256, ApiKeyRecord, KeyStatus, secret_ref
from keygate.storage import aws
from keygate.storage.lookup import DynamoKeyLookup
from keygate.storage.secrets import SecretsManagerVault

CACHE_MAX_ENTRIES = 10_000
POINTER_CACHE_TTL_SECONDS = 24 * 3600  # key id -> user never changes once written
READ_METHODS = frozenset({"GET", "HEAD"})


class TtlCache[Value]:
    """A small LRU with a per-entry deadline on a monotonic clock."""

    def __init__(self, monotonic: Callable[[], float], max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[float, Value]] = OrderedDict()
        self._monotonic = monotonic
        self._max_entries = max_entries

    def get(self, key: str) -> tuple[bool, Value | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._monotonic():
            self._entries.pop(key, None)
            return False, None
        self._entries.move_to_end(key)
        return True, entry[1]

    def put(self, key: str, value: Value, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        self._entries[key] = (self._monotonic() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)


# Every code a refusal of the authorizer carries, in the order of docs/signing.md's checks; each reaches the
# bot with status 401 and a message saying what to fix (README, "When a request is refused").
REFUSAL_CODES = (
    ErrorCode.MISSING_HEADER, ErrorCode.MALFORMED_HEADER,  # 1
    ErrorCode.TIMESTAMP_OUT_OF_WINDOW,  # 2
    ErrorCode.INVALID_KEY_ID,  # 3
    ErrorCode.UNKNOWN_KEY, ErrorCode.KEY_REVOKED, ErrorCode.KEY_EXPIRED, ErrorCode.ALGORITHM_MISMATCH,  # 4
    ErrorCode.SIGNATURE_MISMATCH,
    ErrorCode.IP_NOT_ALLOWED,  # 5
    ErrorCode.PERMISSION_DENIED,  # 6
    ErrorCode.NONCE_REUSED,  # 7
)

# A Gateway Response template pastes the message between JSON quotes as it is (docs/signing.md): a quote, a
# backslash or a control character (any line or paragraph separator too) would break the body or forge a field.
_UNSAFE_IN_MESSAGE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
MAX_MESSAGE_LENGTH = 400


def safe_message(text: str) -> str:
    """`text` with every character a Gateway Response template could not carry replaced by `?`, bounded."""
    return _UNSAFE_IN_MESSAGE.sub("?", text)[:MAX_MESSAGE_LENGTH]


@dataclass(frozen=True)
class Decision:
    """An authorizer's outcome: allowed, or refused with a code and a message saying what to fix."""

    allowed: bool
    code: ErrorCode | None = None
    message: str = ""
    user_id: str | None = None
    key_id: str | None = None
    permissions: tuple[str, ...] = ()

    @classmethod
    def refuse(cls, code: ErrorCode, message: str, **known: Any) -> Decision:
        return cls(allowed=False, code=code, message=safe_message(message), **known)

    @property
    def status(self) -> int:
        # Every refusal is a Deny carrying its code, which the ACCESS_DENIED Gateway Response answers
        # with 401 (docs/architecture.md, "Errors").
        return 200 if self.allowed else 401


@dataclass(frozen=True)
class _CachedKey:
    record: ApiKeyRecord
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    public_key: bytes | None = None  # an Ed25519 key's 32 raw bytes, parsed once per record read
    # A rotation's grace: until when (epoch ms) the previous secret's version or public key still verifies.
    grace_until_ms: int | None = None
    grace_secret_version: str | None = None
    grace_public_key: bytes | None = None


# What check 4 holds a signature to, per key type: its hex length, and the message when it does not fit.
_SIGNATURE_HEX_LENGTH = {HMAC_SHA256: kg1.HMAC_SIGNATURE_HEX_LENGTH, ED25519: kg1.ED25519_SIGNATURE_HEX_LENGTH}
_ALGORITHM = {
    HMAC_SHA256: "This API key is an HMAC-SHA256 key: sign with KG1-HMAC-SHA256 (the first line of the string to "
                 "sign) and send its 64 hex character HMAC in X-KG-SIGNATURE.",
    ED25519: "This API key is an Ed25519 key: sign with KG1-ED25519 (the first line of the string to sign) and "
             "send its 128 hex character Ed25519 signature in X-KG-SIGNATURE.",
}


class SignatureAuthorizer:
    def __init__(self, config: AuthorizerConfig, lookup: KeyLookup, secrets: SecretReader, *,
                 clock_ms: Callable[[], int] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 cache_max_entries: int = CACHE_MAX_ENTRIES) -> None:
        """`clock_ms` is the wall clock of check 2 and of expiry; `monotonic` times the caches."""
        self._config = config
        self.lookup = lookup
        self.secret_reader = secrets
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._monotonic = monotonic
        self._owners: TtlCache[str] = TtlCache(monotonic, cache_max_entries)
        self._records: TtlCache[_CachedKey] = TtlCache(monotonic, cache_max_entries)
        # Unknown ids get a cache of their own: the checksum stops typos, not made-up ids, so a flood
        # of well-formed random ids must not evict the known keys' entries (and multiply DynamoDB reads).
        self._unknown: TtlCache[bool] = TtlCache(monotonic, cache_max_entries)
        self._withdrawal_routes = frozenset(config.withdrawal_routes)
        self._safe_proxies = frozenset(config.safe_proxy_resources)
        self._secrets: TtlCache[str | None] = TtlCache(monotonic, cache_max_entries)  # None: gone
        self._last_touched: TtlCache[bool] = TtlCache(monotonic, cache_max_entries)

    # ------------------------------------------------------------- lookups
    def _known_unknown(self, key_id: str) -> bool:
        return self._unknown.get(key_id)[0]

    def _remember_unknown(self, key_id: str) -> None:
        # Retried soon: the key may have been created a moment ago.
        self._unknown.put(key_id, True, self._config.unknown_key_cache_ttl_seconds)

    def _owner(self, key_id: str) -> str | None:
        found, cached_owner = self._owners.get(key_id)
        if found:
            return cached_owner
        owner = self.lookup.get_key_owner(key_id)
        if owner is None:
            self._remember_unknown(key_id)
        else:
            self._owners.put(key_id, owner, POINTER_CACHE_TTL_SECONDS)
        return owner

    def _key(self, key_id: str) -> _CachedKey | None:
        found, cached = self._records.get(key_id)
        if found:
            return cached
        if self._known_unknown(key_id):
            return None
        owner = self._owner(key_id)
        record = None if owner is None else self.lookup.get_key(owner, key_id)
        if record is None:
            self._remember_unknown(key_id)
            return None
        grace = record.grace
        cached = _CachedKey(record, tuple(ipaddress.ip_network(entry, strict=False) for entry in record.ip_whitelist),
                            _public_key(record, record.public_key),
                            grace_until_ms=None if grace is None else int(grace.valid_until.timestamp() * 1000),
                            grace_secret_version=None if grace is None else grace.secret_version,
                            grace_public_key=None if grace is None else _public_key(record, grace.public_key))
        self._records.put(key_id, cached, self._config.record_cache_ttl_seconds)
        return cached

    def _secret(self, key_id: str, version: str) -> str | None:
        """One of the key's secrets, cached by version: a rotated key's secrets never change either, so the
        record alone (re-read every RecordCacheTtlSeconds) decides which of them verify."""
        name = secret_ref(key_id, version)
        found, secret = self._secrets.get(name)
        if found:
            return secret
        stored = self.secret_reader.read(key_id, version) if version else self.secret_reader.read(key_id)
        # A deleted secret never comes back: its absence is kept as briefly as an unknown key id's, so requests
        # (forged ones too) for a key whose record this instance has not re-read cost one read per that bound
        self._secrets.put(name, stored, self._config.secret_cache_ttl_seconds if stored is not None
                          else self._config.unknown_key_cache_ttl_seconds)
        return stored

    # --------------------------------------------------------------- checks
    def required_permission(self, method: str, resource: str | None) -> str:
        """Check 6: what the route API Gateway matched needs, never what the path's spelling suggests.

        `withdraw` for a declared withdrawal route (its method, or ANY) and for every greedy resource not
        declared safe, since a router behind a catch-all may send any spelling to a withdrawal handler
        (fail closed); without a matched resource, too. Otherwise `read` for GET/HEAD, `trade` for the rest.
        """
        method = method.upper()
        if resource is None or (method, resource) in self._withdrawal_routes \
                or ("ANY", resource) in self._withdrawal_routes \
                or (is_greedy(resource) and resource not in self._safe_proxies):
            return "withdraw"
        return "read" if method in READ_METHODS else "trade"

    def authorize(self, request: SignedRequest) -> Decision:
        """docs/signing.md's checks 1-7, in order. AWS faults raise ServiceUnavailable, never a Decision."""
        now_ms = self._clock_ms()
        # 1. headers present and well formed (each exactly once)
        duplicated = request.duplicated_headers & kg1.SIGNED_HEADER_NAMES
        if duplicated:  # named as kg1 names a header sent twice in different case
            return Decision.refuse(ErrorCode.MALFORMED_HEADER, f"{min(duplicated).upper()} must be sent exactly once.")
        try:
            signed = kg1.parse_signed_headers(request.headers)
            # 2. timestamp inside the window
            kg1.check_timestamp(signed, now_ms)
        except kg1.SigningError as error:
            return Decision.refuse(ErrorCode[error.code], error.message)
        # 3. key id well formed: no lookup for a malformed or forged id
        if not keys.is_well_formed_key_id(signed.key_id, self._config.key_id_prefix):
            return Decision.refuse(ErrorCode.INVALID_KEY_ID,
                                   "X-KG-API-KEY is not a KeyGate API key id: send the key id exactly as issued.")
        # 4. key known, active, not expired; signature of the key's type, equal (constant time)
        cached = self._key(signed.key_id)
        if cached is None:
            return Decision.refuse(ErrorCode.UNKNOWN_KEY,
                                   "No API key has this id: check X-KG-API-KEY (a key created a moment ago "
                                   "is known within seconds).")
        record = cached.record
        known = {"user_id": record.user_id, "key_id": record.key_id}
        if record.status is KeyStatus.REVOKED:
            for version in record.secret_versions():
                self._secrets.drop(secret_ref(record.key_id, version))
            return Decision.refuse(ErrorCode.KEY_REVOKED, "This API key has been revoked: create a new key.", **known)
        if record.is_expired(_utc(now_ms)):
            return Decision.refuse(ErrorCode.KEY_EXPIRED, "This API key has expired: create a new key.", **known)
        expected_length = _SIGNATURE_HEX_LENGTH.get(record.key_type)
        if expected_length is None:
            logger.warning("unknown key type", extra={"api_key": record.key_id})
            return Decision.refuse(ErrorCode.ALGORITHM_MISMATCH,
                                   "This API key's type is not one this authorizer verifies: create a new key.",
                                   **known)
        if len(signed.signature) != expected_length:
            return Decision.refuse(ErrorCode.ALGORITHM_MISMATCH, _ALGORITHM[record.key_type], **known)
        # The current secret (or public key), then, during a rotation's grace, the previous one. A mismatch never
        # refreshes the record: that would give every forged request a DynamoDB read.
        grace_valid = cached.grace_until_ms is not None and now_ms < cached.grace_until_ms
        if record.key_type == ED25519:
            if cached.public_key is None:
                logger.warning("unusable public key", extra={"api_key": record.key_id})
                return Decision.refuse(ErrorCode.SIGNATURE_MISMATCH,
                                       "This API key's public key cannot verify signatures: create a new key.",
                                       **known)
            # The Ed25519 verifier (kg1.ed25519, cryptography) is imported on the first Ed25519 key only
            candidates = [cached.public_key] + ([cached.grace_public_key] if grace_valid and cached.grace_public_key
                                                else [])
            if not any(kg1.verify_ed25519_signature(signed, public_key, request.method, request.path,
                                                    request.query_pairs) for public_key in candidates):
                return Decision.refuse(ErrorCode.SIGNATURE_MISMATCH, _SIGNATURE_MISMATCH, **known)
        else:
            secret = self._secret(record.key_id, record.secret_version)
            if secret is None:
                # Its secret is deleted right after a revocation this instance has not seen yet.
                logger.warning("no secret for an active key record", extra={"api_key": record.key_id})
                return Decision.refuse(ErrorCode.KEY_REVOKED, "This API key has been revoked: create a new key.",
                                       **known)
            if not kg1.verify_signature(signed, secret, request.method, request.path, request.query_pairs):
                previous = self._secret(record.key_id, cached.grace_secret_version) \
                    if grace_valid and cached.grace_secret_version is not None else None
                if previous is None or not kg1.verify_signature(signed, previous, request.method, request.path,
                                                                request.query_pairs):
                    return Decision.refuse(ErrorCode.SIGNATURE_MISMATCH, _SIGNATURE_MISMATCH, **known)
        # 5. source IP inside the whitelist (API Gateway's source IP, never a header)
        if cached.networks and not _ip_allowed(request.source_ip, cached.networks):
            return Decision.refuse(ErrorCode.IP_NOT_ALLOWED,
                                   f"This API key may not be used from {_address(request.source_ip)}: send from "
                                   "an address in its IP whitelist, or add this one to it.", **known)
        # 6. permission the route needs
        needed = self.required_permission(request.method, request.resource)
        if needed not in record.permissions:
            return Decision.refuse(ErrorCode.PERMISSION_DENIED,
                                   f"This API key lacks the {needed} permission, which {request.method} "
                                   f"{request.resource or 'this route'} needs: use a key that holds {needed}.",
                                   **known)
        # 7. nonce unused inside its window, recorded only now that 1-6 passed. The record
        # outlives the last instant the same request could pass check 2.
        try:
            self.lookup.record_nonce(record.key_id, signed.nonce, now_ms=now_ms,
                                      expires_at_ms=signed.timestamp_ms + signed.recv_window_ms + 1)
        except NonceReused:
            return Decision.refuse(ErrorCode.NONCE_REUSED,
                                   "This nonce was already used with this key: send a fresh X-KG-NONCE with "
                                   "every request.", **known)
        self._touch(record, now_ms)
        return Decision(allowed=True, user_id=record.user_id, key_id=record.key_id,
                        permissions=tuple(record.permissions))

    def _touch(self, record: ApiKeyRecord, now_ms: int) -> None:
        """Refresh last_used_at at most once a minute per key; never deny for it."""
        recently, _ = self._last_touched.get(record.key_id)
        if recently:
            return
        self._last_touched.put(record.key_id, True, self._config.last_used_interval_seconds)
        try:
            self.lookup.touch_last_used(record.user_id, record.key_id, _utc(now_ms),
                                         at_most_every_seconds=self._config.last_used_interval_seconds)
        except Exception as error:  # noqa: BLE001 - bookkeeping must never turn an allow into a refusal
            logger.warning("last_used_at not refreshed", extra={"api_key": record.key_id,
                                                                "error_type": type(error).__name__})
            metrics.add_metric(name="LastUsedRefreshFailed", unit="Count", value=1)


_SIGNATURE_MISMATCH = ("The signature does not match the request: check the key's secret (or private key) and the "
                       "string to sign (the path relative to the API root without the stage, the canonical query, "
                       "the digest of the exact body bytes, the headers exactly as sent).")


def _public_key(record: ApiKeyRecord, text: str | None) -> bytes | None:
    """An Ed25519 record's public key as 32 raw bytes (None for another type, or a key that is not usable)."""
    if record.key_type != ED25519 or not text:
        return None
    from kg1 import ed25519  # standard library only: parsing needs no cryptography

    try:
        return ed25519.parse_public_key(text)
    except ed25519.KeyFormatError:
        return None


def _address(source_ip: str) -> str:
    """The source address for a message; API Gateway's is always an IP, anything else is not echoed."""
    try:
        return str(ipaddress.ip_address(source_ip))
    except ValueError:
        return "an address API Gateway could not name"


def _utc(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _ip_allowed(source_ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def from_environment(*, clock_ms: Callable[[], int] | None = None,
                     monotonic: Callable[[], float] = time.monotonic) -> SignatureAuthorizer:
    """The signature authorizer's composition root: its settings and storage, from its environment.

    The clocks replace the real ones in tests and benchmarks.
    """
    storage = StorageConfig.from_environ()
    clients = aws.clients(storage.aws_endpoint_url)
    return SignatureAuthorizer(AuthorizerConfig.from_environ(),
                               DynamoKeyLookup(clients, storage.table_name, storage.nonces_table_name),
                               SecretsManagerVault(clients, storage.secret_name_prefix), clock_ms=clock_ms,
                               monotonic=monotonic)
