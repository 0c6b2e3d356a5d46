"""The local stage's state directory (default `.keygate-local/`, gitignored).

It holds what must survive between `keygate` invocations and nothing else:

- `identity.json` the local identity provider's private signing keys, generated
  once, so `keygate dev token` in one terminal signs with the keys that the
  server in another terminal publishes as its JWKS;
- `wallets.json`  the wallet (private key) `keygate dev onboard` made for each local user, which
  signs that user's EIP-712 agent authorizations;
- `server.json`   while `keygate dev serve` runs: its URLs, the emulation's
  endpoint, the table name and the stack parameters, so the other commands
  reach the same data. Removed when the server stops.
- `authenticator.json` the software passkey authenticator `keygate dev step-up`
  confirms changes with (keygate_dev.authenticator: its private keys and counters).

Both files are created 0600 in a 0700 directory: they hold private keys and
are meaningful only on this machine. `KEYGATE_STATE_DIR` chooses another place.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keygate_dev.authenticator import SoftAuthenticator
from keygate_dev.identity import LocalIdentityProvider, SigningKey
from keygate_dev.template import ROOT

STATE_DIR_VARIABLE = "KEYGATE_STATE_DIR"
DEFAULT_STATE_DIR = ROOT / ".keygate-local"
IDENTITY_FILE = "identity.json"
SERVER_FILE = "server.json"
WALLETS_FILE = "wallets.json"
AUTHENTICATOR_FILE = "authenticator.json"


class StateError(Exception):
    """A problem with the local state the user can fix (message is shown as is)."""


def state_dir() -> Path:
    directory = Path(os.environ.get(STATE_DIR_VARIABLE) or DEFAULT_STATE_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write a 0600 file atomically; with replace=False keep an existing one (returns False)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:  # mkstemp creates it 0600
            handle.write(text)
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if another process created it first
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


# -------------------------------------------------------------- identity keys
def _key_to_json(key: SigningKey) -> dict[str, str]:
    pem = key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    return {"kid": key.kid, "private_key_pem": pem.decode()}


def _key_from_json(data: dict[str, str]) -> SigningKey:
    private_key = serialization.load_pem_private_key(data["private_key_pem"].encode(), password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise StateError("The local identity key is not an EC key; delete the state directory and retry.")
    return SigningKey(kid=data["kid"], private_key=private_key)


def load_identity() -> LocalIdentityProvider:
    """The local stage's identity provider; its keys are generated on first use and then reused."""
    path = state_dir() / IDENTITY_FILE
    if not path.exists():
        fresh = LocalIdentityProvider()
        document = {"session": _key_to_json(fresh.session_key), "step_up": _key_to_json(fresh.step_up_key)}
        _write_private(path, json.dumps(document, indent=2), replace=False)
    try:
        document = json.loads(path.read_text())
        return LocalIdentityProvider(session_key=_key_from_json(document["session"]),
                                     step_up_key=_key_from_json(document["step_up"]))
    except (ValueError, KeyError, TypeError) as error:
        raise StateError(f"{path} is damaged ({error}); delete it and restart the local server.") from error


# -------------------------------------------------------------- local wallets
def wallet_key(user_id: str) -> str:
    """The private key of the local wallet of `user_id`, made (and kept in the state directory) on first use."""
    from keygate import eip712

    path = state_dir() / WALLETS_FILE
    try:
        wallets = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as error:
        raise StateError(f"{path} is damaged ({error}); delete it (the local users get new wallets).") from error
    if user_id not in wallets:
        wallets[user_id] = eip712.new_wallet()[0]
        _write_private(path, json.dumps(wallets, indent=2), replace=True)
    return str(wallets[user_id])


# ------------------------------------------------------------ authenticator
def load_authenticator(origin: str) -> SoftAuthenticator:
    """The local stage's software authenticator (created on first use), speaking from `origin`."""
    path = state_dir() / AUTHENTICATOR_FILE
    try:
        device = SoftAuthenticator.from_json(path.read_text()) if path.exists() else SoftAuthenticator()
    except (ValueError, KeyError, TypeError) as error:
        raise StateError(f"{path} is damaged ({error}); delete it (its passkeys are then registered anew).") \
            from error
    device.origin = origin
    return device


def save_authenticator(device: SoftAuthenticator) -> None:
    _write_private(state_dir() / AUTHENTICATOR_FILE, device.to_json(), replace=True)


# ------------------------------------------------------------- running server
@dataclass
class ServerInfo:
    """What a running `keygate dev serve` publishes for the other commands."""

    pid: int
    api_url: str
    aws_endpoint_url: str | None
    aws_mode: str  # "embedded", "endpoint" (AWS_ENDPOINT_URL) or "real"
    # Region, endpoint and (for emulators only) placeholder credentials every function gets.
    aws_environment: dict[str, str]
    resource_names: dict[str, str]  # the template's tables and the secrets' key, by logical id
    parameters: dict[str, str]
    region: str
    env_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    exchange_bus_name: str = ""  # the exchange's bus in the emulation (keygate_dev.exchange_bus); "" for none

    def save(self) -> None:
        _write_private(state_dir() / SERVER_FILE, json.dumps(asdict(self), indent=2), replace=True)

    def remove(self) -> None:
        path = state_dir() / SERVER_FILE
        try:
            if json.loads(path.read_text()).get("pid") == self.pid:
                path.unlink()
        except (FileNotFoundError, ValueError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v1/time", timeout=2):  # noqa: S310  # nosec B310  # our own http://127.0.0.1 server
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the gateway is up
    except OSError:
        return False


def running_server() -> ServerInfo | None:
    """The server of this state directory if it is running and answering, else None."""
    path = state_dir() / SERVER_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        info = ServerInfo(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None
    if not _alive(info.pid) or not _answers(info.api_url):
        return None
    return info
