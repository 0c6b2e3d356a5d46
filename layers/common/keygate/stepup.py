"""Passkey step-up: every mutation needs a token confirmed for exactly that user and action, used once.

`StepUpVerifier.verify` checks a token's claims and returns the `StepUpUse`
that the mutation's own transaction records (so a failed mutation does not
spend the token, and a token cannot be used twice); a token already recorded is
`StepUpTokenReused`, raised by the storage that finds it (docs/architecture.md,
"Write order").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from keygate import tokens
from keygate.config import StepUpConfig
from keygate.errors import ErrorCode, KeyGateError

HEADER = "X-PASSKEY-TOKEN"
TOKEN_REUSED = "This passkey confirmation has already been used; confirm again."  # noqa: S105  # nosec B105  # message


class Action(StrEnum):
    """What a step-up token is confirmed for; each mutation route declares its own (keygate.routes)."""

    CREATE = "api_keys:create"
    UPDATE = "api_keys:update"
    REVOKE = "api_keys:revoke"
    REVOKE_ALL = "api_keys:revoke_all"
    ROTATE = "api_keys:rotate"


@dataclass(frozen=True)
class StepUpUse:
    """A verified step-up token's id, and when its record may go (it could no longer pass the checks)."""

    jti: str
    expires_at_epoch: int


class StepUpFailed(KeyGateError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STEP_UP_REQUIRED, message)


class StepUpTokenReused(StepUpFailed):
    """The token's id is already recorded: this confirmation was spent by an earlier change."""

    def __init__(self) -> None:
        super().__init__(TOKEN_REUSED)


class StepUpVerifier:
    def __init__(self, config: StepUpConfig) -> None:
        self._config = config

    def verify(self, token: str | None, *, user_id: str, action: Action, now: datetime) -> StepUpUse:
        """The token's use, if it is a passkey confirmation of `action` for `user_id`, else StepUpFailed."""
        if not token:
            raise StepUpFailed(f"This action needs a passkey confirmation: send its token in {HEADER}.")
        try:
            claims = tokens.decode(token, self._config.issuer, required=["exp", "iat", "sub", "jti"])
        except tokens.ExpiredToken as error:
            raise StepUpFailed("The passkey confirmation has expired; confirm again.") from error
        except (tokens.InvalidToken, ValueError) as error:
            raise StepUpFailed("The passkey confirmation token is invalid.") from error
        if claims.get("token_use") != tokens.STEP_UP_TOKEN_USE:  # a session is not a confirmation
            raise StepUpFailed(f'The token is not a passkey confirmation (token_use must be '
                               f'"{tokens.STEP_UP_TOKEN_USE}").')
        if claims.get("sub") != user_id:
            raise StepUpFailed("The passkey confirmation was issued for another user.")
        amr = claims.get("amr")
        if not isinstance(amr, list) or "passkey" not in amr:
            raise StepUpFailed("The confirmation was not made with a passkey.")
        if claims.get("action") != action.value:
            raise StepUpFailed(f"The passkey confirmation was not issued for {action.value}.")
        issued_at = claims["iat"]
        age = now.timestamp() - float(issued_at)
        if age > self._config.max_age_seconds or age < -tokens.CLOCK_SKEW_SECONDS:
            raise StepUpFailed("The passkey confirmation is too old; confirm again.")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
            raise StepUpFailed("The passkey confirmation token has no valid id.")
        # Kept until the token could no longer pass the age check.
        expires_at = int(float(issued_at)) + self._config.max_age_seconds + tokens.CLOCK_SKEW_SECONDS
        return StepUpUse(jti=jti, expires_at_epoch=expires_at)
