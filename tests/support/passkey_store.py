"""keygate.passkeys.PasskeyStore in memory, with the DynamoDB adapter's semantics (one lock stands for
DynamoDB's per-item atomicity): challenges are consumed at most once, never after they expired even
if nothing deleted them, and never by another user or for another ceremony."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime

from keygate.passkeys import Challenge, ChallengeNotConsumed, Passkey, PasskeyAlreadyRegistered, Purpose


class MemoryPasskeyStore:
    def __init__(self) -> None:
        self.challenges: dict[str, Challenge] = {}
        self.passkeys: dict[tuple[str, str], Passkey] = {}
        self._lock = threading.Lock()

    def save_challenge(self, challenge: Challenge) -> None:
        with self._lock:
            self.challenges[challenge.value] = challenge

    def consume_challenge(self, value: str, *, user_id: str, purpose: Purpose, now: datetime) -> Challenge:
        with self._lock:
            found = self.challenges.get(value)
            if (found is None or found.user_id != user_id or found.purpose is not purpose
                    or found.used_at is not None or found.is_expired(now)):
                raise ChallengeNotConsumed(found)
            used = dataclasses.replace(found, used_at=now)
            self.challenges[value] = used
            return used

    def list_passkeys(self, user_id: str) -> list[Passkey]:
        with self._lock:
            mine = [passkey for (owner, _), passkey in self.passkeys.items() if owner == user_id]
        return sorted(mine, key=lambda passkey: (passkey.created_at, passkey.credential_id))

    def get_passkey(self, user_id: str, credential_id: str) -> Passkey | None:
        with self._lock:
            return self.passkeys.get((user_id, credential_id))

    def save_passkey(self, passkey: Passkey) -> None:
        with self._lock:
            if (passkey.user_id, passkey.credential_id) in self.passkeys:
                raise PasskeyAlreadyRegistered()
            self.passkeys[(passkey.user_id, passkey.credential_id)] = passkey

    def delete_passkey(self, user_id: str, credential_id: str) -> Passkey | None:
        with self._lock:
            return self.passkeys.pop((user_id, credential_id), None)

    def record_use(self, user_id: str, credential_id: str, *, sign_count: int, backed_up: bool,
                   used_at: datetime) -> bool:
        with self._lock:
            stored = self.passkeys.get((user_id, credential_id))
            if stored is None:
                return False
            self.passkeys[(user_id, credential_id)] = dataclasses.replace(
                stored, sign_count=max(stored.sign_count, sign_count), backed_up=backed_up, last_used_at=used_at)
            return True
