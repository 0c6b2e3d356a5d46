"""What a step-up confirms: the exact change a request asks for, as a digest and as one sentence.

A mutation's body is validated and normalised by its profile's request model (keygate.profiles), then
turned into the domain change (`NewKey`, `KeyChange`, or nothing for a revoke); `change_digest` hashes
that domain change, so two bodies asking for the same change (`10.0.0.1/32` and `10.0.0.1`, a ZDEX and
a GaiaEx body) have one digest, and any other change another. The step-up options route computes it
from the body the app will send, the mutation from the body it received (keygate.api); the token
carries it (docs/architecture.md, "Passkey step-up").

A new mutation adds its `Action` (keygate.stepup) and its sentence in `summary`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keygate.records import iso
from keygate.service import KeyChange, NewKey, Rotation
from keygate.stepup import Action
from kg1 import ed25519

DIGEST_PREFIX = "sha256:"
_FIELD_NAMES = {"label": "label", "permissions": "permissions", "ip_whitelist": "IP whitelist"}


@dataclass(frozen=True)
class RequestedChange:
    """A request's change as the domain will execute it: its canonical form (JSON-able, order-free)."""

    action: Action
    values: Mapping[str, Any]

    @property
    def digest(self) -> str:
        canonical = json.dumps({"action": self.action.value, "change": self.values}, sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        return DIGEST_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, list):  # permissions and whitelists are sets: their order changes nothing
        return sorted(_canonical(item) for item in value)
    if isinstance(value, datetime):
        return iso(value)
    return value


def requested_change(action: Action, domain: NewKey | KeyChange | Rotation | None) -> RequestedChange:
    """The canonical change of a validated request's domain form (None: the action changes no field)."""
    if isinstance(domain, NewKey):
        values: dict[str, Any] = {"label": domain.label, "permissions": _canonical(domain.permissions),
                                  "ip_whitelist": _canonical(domain.ip_whitelist),
                                  "expires_in_days": domain.expires_in_days,
                                  "expires_at": _canonical(domain.expires_at),
                                  # What kind of credential the key gets, and an Ed25519 key's public key: a
                                  # token for one must not create another (an attacker's public key, or a
                                  # secret answered to whoever sends the request).
                                  "key_type": domain.key_type, "public_key": domain.public_key}
    elif isinstance(domain, KeyChange):
        values = {name: _canonical(value) for name, value in sorted(domain.fields.items())}
    elif isinstance(domain, Rotation):
        values = domain.change()
    else:
        values = {}
    return RequestedChange(action, values)


def _fingerprint(public_key: str) -> str:
    """A public key as a person compares it with the one their tool printed (keygate-keygen prints it)."""
    return ed25519.fingerprint(ed25519.parse_public_key(public_key))


def _listed(values: list[str]) -> str:
    return ", ".join(values) if values else "none"


def _whitelist(values: list[str]) -> str:
    return f"IPs {', '.join(values)}" if values else "any IP"


def summary(change: RequestedChange, *, target_label: str | None = None, target: str | None = None) -> str:
    """One sentence a person confirms on their device, e.g. "Create API key 'grid-bot' with read, trade;
    IPs 203.0.113.50; expires in 90 days"."""
    values = change.values
    named = f"'{target_label}' ({target})" if target_label else (target or "")
    if change.action is Action.CREATE:
        expiry = (f"expires in {values['expires_in_days']} days" if values.get("expires_in_days")
                  else f"expires at {values['expires_at']}" if values.get("expires_at") else "never expires")
        label = f" '{values['label']}'" if values.get("label") else ""
        kind = (f"Ed25519 API key{label} for the public key {_fingerprint(values['public_key'])}"
                if values.get("public_key") else f"API key{label}")
        return (f"Create {kind} with {_listed(values.get('permissions', []))}; "
                f"{_whitelist(values.get('ip_whitelist', []))}; {expiry}")
    if change.action is Action.UPDATE:
        parts = []
        for name, value in values.items():
            if name == "ip_whitelist":
                parts.append(f"IP whitelist to {_whitelist(value)}")
            elif isinstance(value, list):
                parts.append(f"{_FIELD_NAMES.get(name, name)} to {_listed(value)}")
            else:
                parts.append(f"{_FIELD_NAMES.get(name, name)} to '{value}'")
        return f"Change API key {named}: {'; '.join(parts)}" if parts else f"Change nothing on API key {named}"
    if change.action is Action.ROTATE:
        grace = values.get("grace_seconds", 0)
        new = (f"the new public key {_fingerprint(values['public_key'])}" if values.get("public_key")
               else "a new secret, shown once")
        previous = (f"the previous one keeps working for {grace} seconds" if grace
                    else "the previous one stops working at once")
        return f"Rotate API key {named}: {new}; {previous}"
    # An action without a body; a new one adds its sentence here (until then: the generic one below).
    sentence = _SENTENCES.get(change.action)
    if sentence is not None:
        return sentence.format(named=named)
    return f"Confirm {change.action.value}" + (f" on {named}" if named else "")


_SENTENCES = {
    Action.REVOKE: "Revoke API key {named}, irreversibly",
    Action.REVOKE_ALL: "Revoke every active API key of your account, irreversibly",
    Action.PASSKEYS_REGISTER: "Register a new passkey for your account",
    Action.PASSKEYS_DELETE: "Remove passkey {named}",
}
