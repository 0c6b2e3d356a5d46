"""The app's session JWT: who is calling a management route (the session authorizer).

A passkey step-up token is never a session, whoever issued it (keygate.tokens.is_step_up).
"""

from __future__ import annotations

from dataclasses import dataclass

from keygate import tokens
from keygate.config import SessionConfig
from keygate.errors import ErrorCode, KeyGateError


@dataclass(frozen=True)
class Session:
    user_id: str
    # When the user signed in (OIDC's auth_time, epoch seconds), if the session says: a first passkey
    # needs a recent sign-in (keygate.stepup_service).
    auth_time: int | None


def verify_session_token(token: str | None, config: SessionConfig) -> str:
    """The user id (`sub`) of a valid session JWT, else KeyGateError UNAUTHORIZED, SESSION_EXPIRED or
    SESSION_WRONG_AUDIENCE."""
    return verify_session(token, config).user_id


def verify_session(token: str | None, config: SessionConfig) -> Session:
    """The user and sign-in time of a valid session JWT, else KeyGateError UNAUTHORIZED, SESSION_EXPIRED or
    SESSION_WRONG_AUDIENCE."""
    if not token:
        raise KeyGateError(ErrorCode.UNAUTHORIZED, "A session token is required.")
    try:
        claims = tokens.decode(token, config.issuer, required=["exp", "sub", "iss", "aud"])
    except tokens.ExpiredToken as error:
        raise KeyGateError(ErrorCode.SESSION_EXPIRED, "The session has expired; sign in again.") from error
    except tokens.WrongAudience as error:
        raise KeyGateError(ErrorCode.SESSION_WRONG_AUDIENCE,
                           "The token was not issued for KeyGate (wrong audience); use the app's session token.") \
            from error
    except (tokens.InvalidToken, ValueError) as error:
        raise KeyGateError(ErrorCode.UNAUTHORIZED, "The session token is invalid.") from error
    if tokens.is_step_up(token, claims):
        raise KeyGateError(ErrorCode.UNAUTHORIZED, "A passkey confirmation token is not a session token.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise KeyGateError(ErrorCode.UNAUTHORIZED, "The session token has no subject.")
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, bool) or not isinstance(auth_time, int | float):
        return Session(user_id=subject, auth_time=None)
    return Session(user_id=subject, auth_time=int(auth_time))
