"""The app's side of KeyGate's passkey step-up, over HTTP, with a software authenticator (local mode only).

`step_up_token` does what the exchange's app does before a mutation: registers the user's passkey if
this authenticator holds none the server knows (a fresh session may register a first one), asks
POST /v1/trade/step-up/options for the exact change, answers with navigator.credentials.get() (the
software authenticator, keygate_dev.authenticator), and exchanges the assertion for a token at
POST /v1/trade/step-up. `keygate dev step-up` and the end-to-end tests use it; standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keygate_dev.authenticator import SoftAuthenticator

TIMEOUT_SECONDS = 30


class CeremonyError(Exception):
    """The server refused a step of the ceremony (the message quotes its error)."""


@dataclass
class PasskeyApp:
    """One user's app: the API's base URL, their session token, and their authenticator."""

    api_url: str
    session: str
    device: SoftAuthenticator
    label: str = "keygate dev"

    def call(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  # the local server's own http:// URL
            self.api_url.rstrip("/") + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.session}", "Content-Type": "application/json",
                     **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310  # nosec B310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                detail = json.loads(text)["error"]
                message = f"{detail['code']}: {detail['message']}"
            except (ValueError, KeyError, TypeError):
                message = text[:200]
            raise CeremonyError(f"{method} {path} answered {error.code} {message}") from None

    def registered(self) -> bool:
        """Whether this authenticator holds one of the passkeys the server lists for the user."""
        listed = {passkey["passkey_id"] for passkey in self.call("GET", "/v1/trade/passkeys")["passkeys"]}
        return bool(listed & set(self.device.credentials))

    def register(self, *, step_up: str | None = None) -> dict[str, Any]:
        options = self.call("POST", "/v1/trade/passkeys/registration/options")
        credential = self.device.create(options, ignore_exclusions=True)
        headers = {"X-PASSKEY-TOKEN": step_up} if step_up else None
        result: dict[str, Any] = self.call("POST", "/v1/trade/passkeys",
                                           {"credential": credential, "label": self.label}, headers)
        return result

    def options(self, action: str, *, request: Mapping[str, Any] | None = None, profile: str = "gaiaex",
                **target: str) -> dict[str, Any]:
        body = {"action": action, "profile": profile, "request": dict(request or {}),
                **{name: value for name, value in target.items() if value}}
        result: dict[str, Any] = self.call("POST", "/v1/trade/step-up/options", body)
        return result

    def step_up_token(self, action: str, *, request: Mapping[str, Any] | None = None, profile: str = "gaiaex",
                      shown: Callable[[str], object] | None = None, **target: str) -> str:
        """A token confirming exactly this change (registering a passkey first if needed); `shown` gets the
        change's summary, which an app shows before the user touches the authenticator."""
        if not self.registered():
            self.register()
        options = self.options(action, request=request, profile=profile, **target)
        if shown is not None:
            shown(str(options.get("summary", "")))
        answer = self.call("POST", "/v1/trade/step-up", {"credential": self.device.get(options)})
        return str(answer["step_up_token"])
