"""Passkey step-up: every mutation needs a token confirmed for exactly that user, action, target and
change, used once.

Two issuers (StepUpMode): KeyGate's own (`builtin`, keygate.stepup_issuer, after a WebAuthn ceremony,
keygate.passkeys) or an external passkey service (`external`, a JWT checked against its JWKS).
`StepUpVerifier.verify` (external) and `BuiltinStepUpVerifier.verify` check a token against the
`Binding` of the request it arrived with (keygate.binding) and return the `StepUpUse` that the
mutation's own transaction records (so a failed mutation does not spend the token, and a token cannot
be used twice); a token already recorded is `StepUpTokenReused`, raised by the storage that finds it
(docs/architecture.md, "Write order").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from keygate import tokens
from keygate.config import StepUpConfig
from keygate.errors import ErrorCode, KeyGateError

if TYPE_CHECKING:
    from keygate.stepup_issuer import StepUpIssuer

HEADER = "X-PASSKEY-TOKEN"
TOKEN_REUSED = "This passkey confirmation has already been used; confirm again."  # noqa: S105  # nosec B105  # message


class Action(StrEnum):
    """What a step-up token is confirmed for; each mutation route declares its own (keygate.routes)."""

    CREATE = "api_keys:create"
    UPDATE = "api_keys:update"
    REVOKE = "api_keys:revoke"
    REVOKE_ALL = "api_keys:revoke_all"
    ROTATE = "api_keys:rotate"
    # Passkeys (issue 14); a new mutation adds its action here and its sentence in keygate.binding.
    PASSKEYS_REGISTER = "passkeys:register"
    PASSKEYS_DELETE = "passkeys:delete"


@dataclass(frozen=True)
class Binding:
    """What a step-up token must confirm for one request: the action, its target (a key id or a passkey
    id; None for an action without one) and the digest of the exact change (keygate.binding)."""

    action: Action
    target: str | None
    change: str


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

    def verify(self, token: str | None, *, user_id: str, action: Action, now: datetime,
               binding: Binding | None = None) -> StepUpUse:
        """The token's use, if it is a passkey confirmation of `action` for `user_id`, else StepUpFailed.

        An external token that names a `target` or a `change` must name the request's (`binding`); one
        that names neither confirms any change of that action (README, "External step-up issuers")."""
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
        if binding is not None:
            check_binding(claims, binding, required=False)
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


def check_binding(claims: Mapping[str, Any], binding: Binding, *, required: bool) -> None:
    """StepUpFailed unless the token's `target` and `change` are the request's; `required=False` lets a
    token that carries neither pass (external issuers that do not bind)."""
    if not required and "target" not in claims and "change" not in claims:
        return
    if claims.get("target") != binding.target:
        what = "an action without a target" if claims.get("target") is None else "another target"
        raise StepUpFailed(f"The passkey confirmation was approved for {what}, not for "
                           f"{'this request' if binding.target is None else repr(binding.target)}; "
                           "confirm this change.")
    if claims.get("change") != binding.change:
        raise StepUpFailed("The passkey confirmation was approved for a different change than this request "
                           "asks for; confirm the change you send (request new step-up options for this body).")


class BuiltinStepUpVerifier:
    """KeyGate's own step-up tokens (keygate.stepup_issuer), always bound to user, action, target, change."""

    def __init__(self, issuer: StepUpIssuer) -> None:
        self._issuer = issuer

    def verify(self, token: str | None, *, user_id: str, action: Action, now: datetime,
               binding: Binding | None = None) -> StepUpUse:
        if not token:
            raise StepUpFailed(f"This action needs a passkey confirmation: send its token in {HEADER}.")
        claims = self._issuer.verify(token)
        if claims.user_id != user_id:
            raise StepUpFailed("The passkey confirmation was issued for another user.")
        if claims.action != action.value:
            raise StepUpFailed(f"The passkey confirmation was approved for {claims.action}, not {action.value}.")
        check_binding(claims.claims, binding or Binding(action, None, ""), required=True)
        age = now.timestamp() - claims.issued_at.timestamp()
        if age < -tokens.CLOCK_SKEW_SECONDS:
            raise StepUpFailed("The passkey confirmation is not valid yet; check the server clocks.")
        # Kept until the token could no longer pass (its exp plus the clock skew).
        expires_at = int(claims.expires_at.timestamp()) + tokens.CLOCK_SKEW_SECONDS
        return StepUpUse(jti=claims.jti, expires_at_epoch=expires_at)
