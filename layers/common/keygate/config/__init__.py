"""Each function's settings, read from its environment once, at its composition root, and passed down.

A function builds only the groups it uses (`KeyPolicy.from_environ()`, ...), so
it validates only its own environment; a mis-configured stack fails at the
first request with one message naming every wrong variable. Standard library
only. The reader and the signature authorizer's groups are here, the other
functions' in `keygate.config.management`, imported through this module
(docs/architecture.md, "Cold start"). Nothing outside `keygate.config` reads
`os.environ`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Self

from keygate import lazy

if TYPE_CHECKING:  # re-exported: imported on first use by __getattr__ below
    from keygate.config.management import GITHUB_SECRET_SCANNING_KEYS_URL as GITHUB_SECRET_SCANNING_KEYS_URL
    from keygate.config.management import EventsConfig as EventsConfig
    from keygate.config.management import ExchangeEventsConfig as ExchangeEventsConfig
    from keygate.config.management import KeyPolicy as KeyPolicy
    from keygate.config.management import SecretScanningConfig as SecretScanningConfig
    from keygate.config.management import SessionConfig as SessionConfig
    from keygate.config.management import StepUpConfig as StepUpConfig
    from keygate.config.management import TokenIssuer as TokenIssuer

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
            # At least a second each: a cache that keeps nothing would give every forged request a read
            # (docs/architecture.md, "The signature authorizer's caches").
            record_cache_ttl_seconds=env.number("RECORD_CACHE_TTL_SECONDS", cls.record_cache_ttl_seconds,
                                                minimum=1, maximum=60),
            secret_cache_ttl_seconds=env.number("SECRET_CACHE_TTL_SECONDS", cls.secret_cache_ttl_seconds,
                                                minimum=1, maximum=3600),
            unknown_key_cache_ttl_seconds=env.number("UNKNOWN_KEY_CACHE_TTL_SECONDS",
                                                     cls.unknown_key_cache_ttl_seconds, minimum=1, maximum=60),
            last_used_interval_seconds=env.integer("LAST_USED_INTERVAL_SECONDS", cls.last_used_interval_seconds,
                                                   minimum=1),
            withdrawal_routes=tuple(routes), safe_proxy_resources=safe)
        env.done("signature authorizer settings")
        return config


def is_greedy(resource: str) -> bool:
    """Whether an API Gateway resource template has a greedy path parameter ({proxy+})."""
    return "+}" in resource


# What __getattr__ imports from keygate.config.management on first use.
_MANAGEMENT = ("KeyPolicy", "EventsConfig", "TokenIssuer", "StepUpConfig", "SessionConfig", "ExchangeEventsConfig",
               "SecretScanningConfig", "GITHUB_SECRET_SCANNING_KEYS_URL")


if not TYPE_CHECKING:  # so that mypy still reports a misspelt name
    __getattr__ = lazy.module_getattr(globals(), "keygate.config.management", _MANAGEMENT)
