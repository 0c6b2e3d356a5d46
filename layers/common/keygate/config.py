"""Each function's settings, read from its environment once, at its composition root, and passed down.

A function builds only the groups it uses (`KeyPolicy.from_environ()`, ...), so
it validates only its own environment; a mis-configured stack fails at the
first request with one message naming every wrong variable. Standard library
only: the signature authorizer imports this module (docs/architecture.md,
"Cold start"). Nothing else in the layer reads `os.environ`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Self

KNOWN_PERMISSIONS = ("read", "trade", "withdraw")
# The tokens' default audiences (the template's SessionAudience and StepUpAudience): distinct, so that a
# session cannot pass as a step-up token nor the reverse (keygate.tokens).
SESSION_AUDIENCE = "keygate"
STEP_UP_AUDIENCE = "keygate-step-up"
# Who issues step-up tokens (StepUpMode): KeyGate itself after a WebAuthn ceremony, or an external passkey service.
STEP_UP_MODES = ("builtin", "external")
NONE_WORD = "none"  # WithdrawalRoutes' and SafeProxyResources' default: CloudFormation cannot usefully default to ""
ROUTE_METHODS = ("ANY", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


@cache
def _resource_template() -> re.Pattern[str]:
    """An API Gateway resource template: `/`, or `/`-separated literal segments and {parameters} ({name+}
    greedy). Compiled on first use: most stacks declare no withdrawal route (a cold start saves the compile)."""
    return re.compile(r"/|(/([A-Za-z0-9._~:@-]+|\{[A-Za-z0-9._-]+\+?\}))+")


_KEY_ID_PREFIX = re.compile(r"[a-z][a-z0-9]{1,11}_")
_SECRET_NAME_PREFIX = re.compile(r"[A-Za-z0-9/_+=.@-]+/")
# Where an issuer's signing keys may come from: over TLS, or in plain HTTP from this machine only (the
# local server's and the tests' JWKS on 127.0.0.1). No user info, whitespace or control characters. The
# template's SessionJwksUrl and StepUpJwks parameters allow the same (tests/unit/test_token_bounds.py).
_JWKS_URL = re.compile(r"(https://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?"
                       r"|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?)(/[\x21-\x7e]*)?")
_JWKS_URL_RULE = "an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)"


class ConfigError(Exception):
    """The function's environment is wrong; the message names every variable at fault."""


class _Environment:
    """Reads typed values from an environment, collecting every problem before failing once."""

    def __init__(self, environ: Mapping[str, str] | None) -> None:
        self._environ = os.environ if environ is None else environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None,
             min_length: int = 0, rule: str = "") -> str:
        value = self._environ.get(name, default)
        if value is None:
            self.problems.append(f"{name} is required")
            return ""
        if len(value) < min_length or (pattern is not None and not pattern.fullmatch(value)):
            self.problems.append(f"{name} must be {rule or f'at least {min_length} characters'}")
        return value

    def optional(self, name: str) -> str | None:
        return self._environ.get(name) or None

    def number(self, name: str, default: float, *, minimum: float, maximum: float = math.inf) -> float:
        raw = self._environ.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not minimum <= value <= maximum:  # also refuses nan
            self.problems.append(f"{name} must be a number from {minimum:g} to {maximum:g}, not {raw!r}")
            return default
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: float = math.inf) -> int:
        value = self.number(name, default, minimum=minimum, maximum=maximum)
        if value != int(value):
            self.problems.append(f"{name} must be a whole number")
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name)
        if raw is None:
            return default
        if raw.strip().lower() not in ("true", "false"):
            self.problems.append(f"{name} must be true or false, not {raw!r}")
            return default
        return raw.strip().lower() == "true"

    def items(self, name: str, default: tuple[str, ...], *, none_word: str | None = None) -> tuple[str, ...]:
        raw = self._environ.get(name)
        if raw is None:
            return default
        if none_word is not None and raw.strip() == none_word:
            return ()
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)

    def done(self, what: str) -> None:
        if self.problems:
            raise ConfigError(f"{what}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class StorageConfig:
    """Where keys live: the keys table, the secrets' name prefix, and an emulator's endpoint (local mode, tests).

    `nonces_table_name` is set for the signature authorizer only, the one function that records nonces, and
    `secrets_kms_key_id` (the KMS key that encrypts new secrets) for the create path only, the one that
    writes secrets (docs/architecture.md, "Data model").
    """

    table_name: str
    secret_name_prefix: str
    aws_endpoint_url: str | None = None
    nonces_table_name: str | None = None
    secrets_kms_key_id: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        nonces_table_name = env.optional("NONCES_TABLE_NAME")
        env.check(nonces_table_name is None or len(nonces_table_name) >= 3,
                  "NONCES_TABLE_NAME must be at least 3 characters")
        config = cls(table_name=env.text("TABLE_NAME", min_length=3),
                     secret_name_prefix=env.text("SECRET_NAME_PREFIX", pattern=_SECRET_NAME_PREFIX,
                                                 rule="letters, digits or /_+=.@- ending in '/'"),
                     aws_endpoint_url=env.optional("AWS_ENDPOINT_URL"),
                     nonces_table_name=nonces_table_name,
                     secrets_kms_key_id=env.optional("SECRETS_KMS_KEY_ID"))
        env.done("storage settings")
        return config


def _key_id_prefix(env: _Environment) -> str:
    return env.text("KEY_ID_PREFIX", "kgk_", pattern=_KEY_ID_PREFIX,
                    rule="2-12 lower-case letters or digits followed by '_'")


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
                                                         minimum=0, maximum=60),
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


@dataclass(frozen=True)
class AuthorizerConfig:
    """The signature authorizer's caches and routes (their bounds: docs/architecture.md, "Bounds").

    `withdrawal_routes` are the (METHOD, resource template) pairs that need `withdraw` (METHOD may be
    ANY), matched against the route API Gateway matched; `safe_proxy_resources` the greedy resources
    that do not (every other `{proxy+}` resource does: docs/signing.md, check 6).
    """

    key_id_prefix: str = "kgk_"
    record_cache_ttl_seconds: float = 5
    secret_cache_ttl_seconds: float = 300
    unknown_key_cache_ttl_seconds: float = 2
    last_used_interval_seconds: int = 60
    withdrawal_routes: tuple[tuple[str, str], ...] = ()
    safe_proxy_resources: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Environment(environ)
        routes = []
        for entry in env.items("WITHDRAWAL_ROUTES", (), none_word=NONE_WORD):
            method, _, resource = entry.partition(" ")
            method, resource = method.upper(), resource.strip()
            env.check(method in ROUTE_METHODS and bool(_resource_template().fullmatch(resource)),
                      f"WITHDRAWAL_ROUTES: {entry!r} is not 'METHOD /resource/template' "
                      f"(METHOD one of {', '.join(ROUTE_METHODS)})")
            routes.append((method, resource))
        safe = env.items("SAFE_PROXY_RESOURCES", (), none_word=NONE_WORD)
        env.check(all(_resource_template().fullmatch(resource) and is_greedy(resource) for resource in safe),
                  "SAFE_PROXY_RESOURCES: each entry must be a resource template ending in a greedy {name+}")
        config = cls(
            key_id_prefix=_key_id_prefix(env),
            record_cache_ttl_seconds=env.number("RECORD_CACHE_TTL_SECONDS", cls.record_cache_ttl_seconds,
                                                minimum=0, maximum=60),
            secret_cache_ttl_seconds=env.number("SECRET_CACHE_TTL_SECONDS", cls.secret_cache_ttl_seconds,
                                                minimum=0, maximum=3600),
            unknown_key_cache_ttl_seconds=env.number("UNKNOWN_KEY_CACHE_TTL_SECONDS",
                                                     cls.unknown_key_cache_ttl_seconds, minimum=0, maximum=60),
            last_used_interval_seconds=env.integer("LAST_USED_INTERVAL_SECONDS", cls.last_used_interval_seconds,
                                                   minimum=1),
            withdrawal_routes=tuple(routes), safe_proxy_resources=safe)
        env.done("signature authorizer settings")
        return config


def is_greedy(resource: str) -> bool:
    """Whether an API Gateway resource template has a greedy path parameter ({proxy+})."""
    return "+}" in resource


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
