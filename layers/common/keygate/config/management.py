"""The settings of every function but the signature authorizer: the key policy, the lifecycle events, the
tokens (sessions, step-up), the exchange's events and secret scanning.

Imported through `keygate.config` (docs/architecture.md, "Cold start").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from keygate.config import (
    KNOWN_PERMISSIONS,
    SESSION_AUDIENCE,
    STEP_UP_AUDIENCE,
    STEP_UP_MODES,
    _Environment,
    _key_id_prefix,
)

# Where an issuer's signing keys may come from: over TLS, or in plain HTTP from this machine only (the
# local server's and the tests' JWKS on 127.0.0.1). No user info, whitespace or control characters. The
# template's SessionJwksUrl and StepUpJwks parameters allow the same (tests/unit/test_token_bounds.py).
_JWKS_URL = re.compile(r"(https://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?"
                       r"|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?)(/[\x21-\x7e]*)?")
_JWKS_URL_RULE = "an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)"


@dataclass(frozen=True)
class KeyPolicy:
    """What a deployment allows: the key id prefix, the key limit, the permissions keys may hold, and
    whether a mutation needs a passkey step-up (StepUpRequired; off, a session alone changes keys) and who
    issues it (StepUpMode: `builtin`, KeyGate's own passkey ceremony, or `external`)."""

    key_id_prefix: str = "kgk_"
    max_active_keys_per_user: int = 10
    allowed_permissions: tuple[str, ...] = ("read", "trade")
    # How long a secret may outlive a failed create before the janitor may treat it as an orphan:
    # longer than any create can take (the function's timeout).
    orphan_grace_seconds: int = 120
    step_up_required: bool = True
    # The signature authorizer's RecordCacheTtlSeconds: a rotated key's new secret verifies everywhere this long
    # after the rotation committed (its `usable_from`).
    record_cache_ttl_seconds: float = 5
    step_up_mode: str = "builtin"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        allowed = env.items("ALLOWED_PERMISSIONS", cls.allowed_permissions)
        env.check(bool(allowed) and set(allowed) <= set(KNOWN_PERMISSIONS),
                  f"ALLOWED_PERMISSIONS must be a non-empty subset of {', '.join(KNOWN_PERMISSIONS)}")
        env.check("read" in allowed, "ALLOWED_PERMISSIONS must include read: it is the default permission")
        policy = cls(key_id_prefix=_key_id_prefix(env),
                     max_active_keys_per_user=env.integer("MAX_ACTIVE_KEYS_PER_USER", cls.max_active_keys_per_user,
                                                          minimum=1, maximum=30),
                     allowed_permissions=allowed,
                     orphan_grace_seconds=env.integer("ORPHAN_GRACE_SECONDS", cls.orphan_grace_seconds, minimum=10),
                     step_up_required=env.flag("STEP_UP_REQUIRED", cls.step_up_required),
                     record_cache_ttl_seconds=env.number("RECORD_CACHE_TTL_SECONDS", cls.record_cache_ttl_seconds,
                                                         minimum=1, maximum=60),
                     step_up_mode=env.text("STEP_UP_MODE", cls.step_up_mode,
                                           pattern=re.compile("|".join(STEP_UP_MODES)),
                                           rule=" or ".join(STEP_UP_MODES)))
        env.done("key policy")
        return policy


_EVENT_BUS_NAME = re.compile(r"[A-Za-z0-9._/-]{1,256}")


@dataclass(frozen=True)
class EventsConfig:
    """Where the lifecycle events go (the stack parameter LifecycleEventBusName; `default`: the account's
    default bus) and the key id prefix their key prefixes are cut from."""

    bus_name: str
    key_id_prefix: str = "kgk_"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        config = cls(bus_name=env.text("LIFECYCLE_EVENT_BUS_NAME", pattern=_EVENT_BUS_NAME,
                                       rule="an event bus name (letters, digits, ._/-)"),
                     key_id_prefix=_key_id_prefix(env))
        env.done("lifecycle events settings")
        return config


@dataclass(frozen=True)
class TokenIssuer:
    """A JWT issuer KeyGate trusts: `iss`, `aud` and the JWKS URL of its signing keys."""

    issuer: str
    audience: str
    jwks_url: str


@dataclass(frozen=True)
class StepUpConfig:
    """The passkey step-up tokens mutations need, and how old one may be."""

    issuer: TokenIssuer
    max_age_seconds: int = 300

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        config = cls(issuer=TokenIssuer(issuer=env.text("STEP_UP_ISSUER", min_length=1),
                                        audience=env.text("STEP_UP_AUDIENCE", STEP_UP_AUDIENCE),
                                        jwks_url=env.text("STEP_UP_JWKS_URL", pattern=_JWKS_URL,
                                                          rule=_JWKS_URL_RULE)),
                     max_age_seconds=env.integer("STEP_UP_MAX_AGE_SECONDS", cls.max_age_seconds,
                                                 minimum=30, maximum=3600))
        env.done("step-up settings")
        return config


@dataclass(frozen=True)
class SessionConfig:
    """The app's session JWTs, checked by the session authorizer."""

    issuer: TokenIssuer

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        config = cls(issuer=TokenIssuer(issuer=env.text("SESSION_ISSUER", ""),
                                        audience=env.text("SESSION_AUDIENCE", SESSION_AUDIENCE),
                                        jwks_url=env.text("SESSION_JWKS_URL", "", pattern=_JWKS_URL,
                                                          rule=_JWKS_URL_RULE)))
        env.done("session settings")
        return config


# ------------------------------------------------- issue 16: events in, leaks, operators
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class ExchangeEventsConfig:
    """The EIP-712 domain of the exchange's agent authorizations (stack parameters AgentDomainName,
    AgentChainId, AgentVerifyingContract, ExchangeAgentAddress): what KeyGate rebuilds typed data from."""

    agent_domain_name: str
    agent_chain_id: int
    agent_verifying_contract: str
    exchange_agent_address: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        config = cls(agent_domain_name=env.text("AGENT_DOMAIN_NAME", min_length=1),
                     agent_chain_id=env.integer("AGENT_CHAIN_ID", 0, minimum=1, maximum=2**53),
                     agent_verifying_contract=env.text("AGENT_VERIFYING_CONTRACT", pattern=_ADDRESS,
                                                       rule="a 0x-prefixed 20-byte hex address"),
                     exchange_agent_address=env.text("EXCHANGE_AGENT_ADDRESS", pattern=_ADDRESS,
                                                     rule="a 0x-prefixed 20-byte hex address"))
        env.check("AGENT_CHAIN_ID" in (os.environ if environ is None else environ), "AGENT_CHAIN_ID is required")
        env.done("exchange event settings")
        return config


GITHUB_SECRET_SCANNING_KEYS_URL = "https://api.github.com/meta/public_keys/secret_scanning"  # noqa: S105  # nosec B105  # a public URL
_LOCAL_STAGE = "local"


@dataclass(frozen=True)
class SecretScanningConfig:
    """Where GitHub's secret scanning public keys come from (SecretScanningKeysUrl): https://, except that the
    local stage may name a loopback http:// URL (its tests play GitHub)."""

    keys_url: str = GITHUB_SECRET_SCANNING_KEYS_URL

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        url = env.text("SECRET_SCANNING_KEYS_URL", GITHUB_SECRET_SCANNING_KEYS_URL, pattern=_JWKS_URL,
                       rule=_JWKS_URL_RULE)
        stage = env.text("STAGE", "")
        env.check(url.startswith("https://") or stage == _LOCAL_STAGE,
                  "SECRET_SCANNING_KEYS_URL must be https:// outside the local stage")
        env.done("secret scanning settings")
        return cls(keys_url=url)
