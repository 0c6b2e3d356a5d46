"""The passkey and step-up routes (issue 14): register and list passkeys, remove one, and the step-up
ceremony that ends in a token bound to the exact change (keygate.binding).

`StepUpService` wires the WebAuthn ceremonies (keygate.passkeys), their storage, KeyGate's token
issuer (keygate.stepup_issuer) and the key repository (to resolve and describe a target); its
composition root `passkey_functions()` extends the management functions' (keygate.wiring), whose
`verify_step_up` checks the tokens of the passkey mutations. Only the passkey functions import this
module: py_webauthn ships with them alone (docs/architecture.md, "Passkey step-up").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache, cached_property
from typing import Any

from pydantic import ValidationError

from keygate import routes, wiring
from keygate.api import describe_validation_error
from keygate.binding import RequestedChange, requested_change, summary
from keygate.errors import ErrorCode, KeyGateError
from keygate.observability import logger, metrics
from keygate.passkeys import (
    Passkey,
    PasskeyConfig,
    PasskeyEvent,
    PasskeyEventKind,
    PasskeyNotFound,
    Passkeys,
    SuspectedClonedAuthenticator,
)
from keygate.records import ApiKeyRecord, now_utc
from keygate.routing import Target
from keygate.service import KeyRef
from keygate.stepup import Action, StepUpUse
from keygate.stepup_issuer import IssuedStepUp, StepUpIssuer, StepUpIssuerConfig
from keygate.stepup_models import (
    PasskeyAuditView,
    PasskeyList,
    PasskeyView,
    StepUpBindingView,
    StepUpOptions,
    StepUpOptionsRequest,
)
from keygate.storage.kms import KmsSigner
from keygate.storage.passkeys import DynamoPasskeyStore
from keygate.wiring import Management

# Where the options body names an action's target, by how the route's path names it.
_TARGET_FIELDS = {Target.KEY_ID: "api_key", Target.HANDLE: "id", Target.PASSKEY: "passkey_id"}


class PasskeyFunctions(Management):
    """The composition root of the passkey functions: the management root, plus passkeys and the issuer."""

    def __init__(self, clock: Callable[[], datetime] = now_utc) -> None:
        super().__init__()
        self.clock = clock
        self.store = DynamoPasskeyStore(self._clients, self.storage.table_name)

    @cached_property
    def config(self) -> PasskeyConfig:
        return PasskeyConfig.from_environ()

    @cached_property
    def passkeys(self) -> Passkeys:
        return Passkeys(self.config, self.store, clock=lambda: self.clock())

    @cached_property
    def issuer(self) -> StepUpIssuer:
        # Only the step-up function signs (kms:Sign); the others verify (kms:GetPublicKey).
        return StepUpIssuer(StepUpIssuerConfig.from_environ(), KmsSigner(self._clients), clock=lambda: self.clock())

    # ------------------------------------------------------------ passkeys
    def register(self, user_id: str, credential: Mapping[str, Any], *, label: str, auth_time: str | None,
                 step_up_token: str | None, source_ip: str) -> Passkey:
        """A user's first passkey needs a session signed in at most PasskeyEnrolmentMaxSessionAgeSeconds
        ago; every further one a step-up (passkeys:register) with a passkey the user already has."""
        now = self.clock()
        step_up: StepUpUse | None = None
        if self.store.list_passkeys(user_id):
            step_up = self.verify_step_up(step_up_token, user_id=user_id, action=Action.PASSKEYS_REGISTER, now=now,
                                          change=RequestedChange(Action.PASSKEYS_REGISTER, {}))
        else:
            self._check_fresh_sign_in(auth_time, now)

        def commit(passkey: Passkey) -> None:
            self.store.commit_registration(passkey, PasskeyEvent(
                user_id=user_id, event=PasskeyEventKind.REGISTERED, passkey_id=passkey.credential_id,
                label=passkey.label, ip_address=source_ip, created_at=now), step_up, now)

        passkey = self.passkeys.register(user_id, credential, label=label, commit=commit)
        logger.info("passkey registered", extra={"user_id": user_id, "second_factor": step_up is not None})
        return passkey

    def _check_fresh_sign_in(self, auth_time: str | None, now: datetime) -> None:
        limit = self.config.enrolment_max_session_age_seconds
        try:
            signed_in = float(auth_time) if auth_time else None
        except ValueError:
            signed_in = None
        if signed_in is None or not -5 <= now.timestamp() - signed_in <= limit:
            raise KeyGateError(ErrorCode.STEP_UP_REQUIRED,
                               f"Your first passkey needs a sign-in from the last {limit} seconds (the session's "
                               "auth_time); sign in again, then register it.")

    def list(self, user_id: str) -> PasskeyList:
        passkeys = self.store.list_passkeys(user_id)
        events = self.store.list_events(user_id)
        return PasskeyList(
            count=len(passkeys),
            passkeys=[PasskeyView(passkey_id=passkey.credential_id, label=passkey.label, created_at=passkey.created_at,
                                  last_used_at=passkey.last_used_at, backed_up=passkey.backed_up)
                      for passkey in passkeys],
            audit=[PasskeyAuditView(action=event.event.value, passkey_id=event.passkey_id, label=event.label,
                                    ip_address=event.ip_address, created_at=event.created_at) for event in events])

    def remove(self, user_id: str, passkey_id: str, *, step_up: StepUpUse | None, source_ip: str) -> Passkey:
        now = self.clock()
        passkey = self.store.get_passkey(user_id, passkey_id) if 0 < len(passkey_id) <= 1024 else None
        event = None if passkey is None else PasskeyEvent(
            user_id=user_id, event=PasskeyEventKind.REMOVED, passkey_id=passkey.credential_id, label=passkey.label,
            ip_address=source_ip, created_at=now)
        if passkey is None or event is None or not self.store.commit_removal(passkey, event, step_up, now):
            raise PasskeyNotFound()
        logger.info("passkey removed", extra={"user_id": user_id})
        return passkey

    # ------------------------------------------------------------- step-up
    def _target(self, user_id: str, kind: Target, value: str) -> tuple[str, str | None, ApiKeyRecord | None]:
        """The canonical target (a key id or a passkey id), its label and, for a key, its record; 404 when it is
        not the caller's."""
        if kind is Target.PASSKEY:
            passkey = self.store.get_passkey(user_id, value) if 0 < len(value) <= 1024 else None
            if passkey is None:
                raise PasskeyNotFound()
            return passkey.credential_id, passkey.label, None
        key = KeyRef(key_id=value) if kind is Target.KEY_ID else KeyRef(handle=value)
        record = self.lifecycle.owned_key(user_id, key)
        return record.key_id, record.label or None, record

    def step_up_options(self, user_id: str, request: StepUpOptionsRequest) -> StepUpOptions:
        """Options bound to the change `request` describes, as KeyGate will execute it, and its summary."""
        action = request.action
        route = routes.step_up_route(action, request.profile)
        if route is None:
            raise KeyGateError(ErrorCode.INVALID_REQUEST,
                               f"The {request.profile} profile has no route for {action.value}.")
        body = None
        if route.request_model is not None and not route.step_up_in_handler:
            try:
                body = route.request_model.model_validate(dict(request.request), context=self.validation_context())
            except ValidationError as error:
                raise KeyGateError(ErrorCode.INVALID_REQUEST,
                                   f"request: {describe_validation_error(error)}") from None
        elif request.request:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, f"request: {action.value} sends no body; send {{}}.")
        change = requested_change(action, body.domain() if body is not None and hasattr(body, "domain") else None)
        given = {field: getattr(request, field) for field in _TARGET_FIELDS.values() if getattr(request, field)}
        target = label = record = None
        if route.target is not None:
            kind = route.target[1]
            field = _TARGET_FIELDS[kind]
            if set(given) != {field}:
                raise KeyGateError(ErrorCode.INVALID_REQUEST, f"{action.value} in the {request.profile} profile "
                                                              f"needs its target in `{field}` (and no other).")
            target, label, record = self._target(user_id, kind, given[field])
        elif given:
            raise KeyGateError(ErrorCode.INVALID_REQUEST, f"{action.value} has no target; leave out "
                                                          f"{', '.join(sorted(given))}.")
        if action is Action.ROTATE and record is not None and body is not None and hasattr(body, "domain"):
            self.lifecycle.check_rotation(record, body.domain())
        sentence = summary(change, target_label=label, target=target)
        options = None
        if self.lifecycle.policy.step_up_mode == "builtin":
            options = self.passkeys.step_up_options(user_id, action=action.value, target=target,
                                                    change=change.digest).options
        return StepUpOptions(options=options, summary=sentence,
                             binding=StepUpBindingView(action=action.value, target=target, change=change.digest))

    def step_up(self, user_id: str, credential: Mapping[str, Any], *, source_ip: str) -> IssuedStepUp:
        """Verify the assertion against its challenge, then issue the token it confirms."""
        if self.lifecycle.policy.step_up_mode != "builtin":
            raise KeyGateError(ErrorCode.INVALID_REQUEST, "This deployment uses an external step-up issuer "
                                                          "(StepUpMode=external); get the token from it.")
        try:
            approval = self.passkeys.verify_step_up(user_id, credential)
        except SuspectedClonedAuthenticator as clone:
            metrics.add_metric(name="PasskeyCloneSuspected", unit="Count", value=1)
            logger.warning("passkey counter went backwards", extra={
                "user_id": user_id, "stored_sign_count": clone.stored_sign_count,
                "presented_sign_count": clone.presented_sign_count})
            self.store.record_event(PasskeyEvent(
                user_id=user_id, event=PasskeyEventKind.CLONE_SUSPECTED, passkey_id=clone.credential_id,
                label="", ip_address=source_ip, created_at=self.clock(),
                details={"stored_sign_count": clone.stored_sign_count,
                         "presented_sign_count": clone.presented_sign_count}))
            raise
        issued = self.issuer.issue(user_id=user_id, action=approval.action, target=approval.target,
                                   change=approval.change)
        logger.info("step-up issued", extra={"user_id": user_id, "action": approval.action})
        return issued


@cache
def passkey_functions() -> PasskeyFunctions:
    return PasskeyFunctions()


wiring.on_forget(passkey_functions.cache_clear)
