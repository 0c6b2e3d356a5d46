"""The passkey and step-up routes' request and response models (issue 14; the routes: keygate.routes).

WebAuthn payloads travel in the WebAuthn Level 3 JSON serialisation (base64url), as
`PublicKeyCredential.toJSON()` produces them and py_webauthn parses them; the models only check they
are JSON objects, keygate.passkeys checks the rest. No py_webauthn here: keygate.routes imports this.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictStr

from keygate.models import Request, Response
from keygate.stepup import Action

PROFILES = ("gaiaex", "zdex")


# ------------------------------------------------------------------- requests
class RegisterPasskeyRequest(Request):
    credential: dict[str, Any] = Field(description="RegistrationResponseJSON: PublicKeyCredential.toJSON() of "
                                                   "navigator.credentials.create(options).")
    label: StrictStr = Field(default="Passkey", max_length=50, description="A name for this passkey.")


class StepUpOptionsRequest(Request):
    """The change the user is about to confirm: the action, its target, and the exact body the mutation
    will send (in its profile's shape)."""

    action: Action
    api_key: StrictStr | None = Field(default=None, max_length=200, description="GaiaEx: the key to change.")
    id: StrictStr | None = Field(default=None, max_length=200, description="ZDEX: the key's id.")
    passkey_id: StrictStr | None = Field(default=None, max_length=1024, description="The passkey to remove.")
    profile: Literal["gaiaex", "zdex"] = "gaiaex"
    request: dict[str, Any] = Field(default_factory=dict,
                                    description="The exact JSON body the mutation will send, or {}.")


class StepUpRequest(Request):
    credential: dict[str, Any] = Field(description="AuthenticationResponseJSON: PublicKeyCredential.toJSON() of "
                                                   "navigator.credentials.get(options).")


# ------------------------------------------------------------------ responses
class CeremonyOptions(Response):
    options: dict[str, Any]


class StepUpBindingView(BaseModel):
    """What the token will confirm (an external issuer puts `target` and `change` in its token)."""

    action: str
    target: str | None
    change: str


class StepUpOptions(Response):
    options: dict[str, Any] | None = Field(description="PublicKeyCredentialRequestOptionsJSON for "
                                                       "navigator.credentials.get(); null in external mode.")
    summary: str = Field(description="The change in one sentence: show it before the user touches the authenticator.")
    binding: StepUpBindingView


class StepUpToken(Response):
    step_up_token: str = Field(repr=False)
    expires_at: datetime


class PasskeyCreated(Response):
    passkey_id: str
    label: str
    created_at: datetime


class PasskeyView(Response):
    passkey_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool


class PasskeyAuditView(Response):
    action: str
    passkey_id: str
    label: str
    ip_address: str
    created_at: datetime


class PasskeyList(Response):
    passkeys: list[PasskeyView]
    count: int
    audit: list[PasskeyAuditView] = Field(description="Registrations, removals and suspected clones, newest first.")


class PasskeyRemoved(Response):
    success: Literal[True] = True
    passkey_id: str
