"""The function environment, validated once by a pydantic model.

Nothing else reads os.environ: every setting reaches the code through
`get_config()`, so a mis-configured stack fails at the first request with a
clear validation error instead of deep inside a handler.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

KNOWN_PERMISSIONS = ("read", "trade", "withdraw")
NO_WITHDRAWAL_ROUTES = "none"  # WithdrawalPathPrefixes' default
_KEY_ID_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,11}_$")


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    stage: str = Field(alias="STAGE", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    secret_name_prefix: str = Field(alias="SECRET_NAME_PREFIX", pattern=r"^[A-Za-z0-9/_+=.@-]+/$")
    key_id_prefix: str = Field(alias="KEY_ID_PREFIX", default="kgk_")
    max_active_keys_per_user: int = Field(alias="MAX_ACTIVE_KEYS_PER_USER", default=10, ge=1, le=30)
    allowed_permissions: tuple[str, ...] = Field(alias="ALLOWED_PERMISSIONS", default=("read", "trade"))
    step_up_issuer: str = Field(alias="STEP_UP_ISSUER", min_length=1)
    step_up_jwks_url: str = Field(alias="STEP_UP_JWKS_URL", min_length=1)
    step_up_audience: str = Field(alias="STEP_UP_AUDIENCE", default="keygate")
    step_up_max_age_seconds: int = Field(alias="STEP_UP_MAX_AGE_SECONDS", default=300, ge=30, le=3600)
    session_issuer: str = Field(alias="SESSION_ISSUER", default="")
    session_audience: str = Field(alias="SESSION_AUDIENCE", default="")
    session_jwks_url: str = Field(alias="SESSION_JWKS_URL", default="")
    # How long a secret may outlive a failed create before the janitor may
    # treat it as an orphan: longer than any create can take (function timeout).
    orphan_grace_seconds: int = Field(alias="ORPHAN_GRACE_SECONDS", default=120, ge=10)
    aws_endpoint_url: str | None = Field(alias="AWS_ENDPOINT_URL", default=None)
    # Signature authorizer caches: a revoked or expired key is refused within
    # record_cache_ttl_seconds; secrets are immutable, so they may live longer.
    record_cache_ttl_seconds: float = Field(alias="RECORD_CACHE_TTL_SECONDS", default=5, ge=0, le=60)
    secret_cache_ttl_seconds: float = Field(alias="SECRET_CACHE_TTL_SECONDS", default=300, ge=0, le=3600)
    unknown_key_cache_ttl_seconds: float = Field(alias="UNKNOWN_KEY_CACHE_TTL_SECONDS", default=2, ge=0, le=60)
    last_used_interval_seconds: int = Field(alias="LAST_USED_INTERVAL_SECONDS", default=60, ge=1)
    withdrawal_path_prefixes: tuple[str, ...] = Field(alias="WITHDRAWAL_PATH_PREFIXES", default=())

    @field_validator("allowed_permissions", "withdrawal_path_prefixes", mode="before")
    @classmethod
    def _split_comma_separated(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            # CloudFormation parameters cannot usefully default to "": the template says "none".
            if info.field_name == "withdrawal_path_prefixes" and value.strip() == NO_WITHDRAWAL_ROUTES:
                return ()
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("withdrawal_path_prefixes")
    @classmethod
    def _absolute_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not prefix.startswith("/") for prefix in value):
            raise ValueError("withdrawal path prefixes must start with '/'")
        return value

    @field_validator("allowed_permissions")
    @classmethod
    def _known_permissions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(KNOWN_PERMISSIONS))
        if unknown or not value:
            raise ValueError(f"allowed permissions must be a non-empty subset of {KNOWN_PERMISSIONS}")
        if "read" not in value:
            raise ValueError("'read' must be allowed: it is the default permission")
        return value

    @field_validator("key_id_prefix")
    @classmethod
    def _key_id_prefix(cls, value: str) -> str:
        if not _KEY_ID_PREFIX.match(value):
            raise ValueError("KEY_ID_PREFIX must be 2-12 lower-case letters or digits followed by '_'")
        return value


@lru_cache(maxsize=1)
def get_config() -> Config:
    return Config.model_validate(dict(os.environ))


def reset_config() -> None:
    """Forget the cached config (tests change the environment between cases)."""
    get_config.cache_clear()
