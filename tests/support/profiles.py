"""The two wire profiles as a client speaks them, so one test can run on GaiaEx's routes and on ZDEX's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keygate import keys

_SCOPES = {"read": "READ_ONLY", "trade": "TRADE", "withdraw": "WITHDRAW"}


@dataclass(frozen=True)
class WireProfile:
    name: str
    collection: str  # the route that creates and lists keys
    ref_field: str  # what a created key is addressed by in this profile's paths
    key_id_field: str  # the API key id in a create answer

    def key_path(self, ref: str) -> str:
        return f"{self.collection}/{ref}"

    def ref_of(self, created: dict[str, Any]) -> str:
        return str(created[self.ref_field])

    def key_id_of(self, created: dict[str, Any]) -> str:
        return str(created[self.key_id_field])

    def unknown_ref(self) -> str:
        """A well-formed reference to a key nobody has."""
        return keys.new_key_id("kgk_") if self.name == "gaiaex" else keys.new_handle()

    def listed_refs(self, listed: dict[str, Any]) -> list[str]:
        return [str(view[self.ref_field]) for view in listed["keys"]]

    def body(self, *, label: str | None = None, permissions: Iterable[str] | None = None,
             ip_whitelist: Iterable[str] | None = None) -> dict[str, Any]:
        """A create or update body with KeyGate's values, in this profile's names."""
        body: dict[str, Any] = {}
        if label is not None:
            body["label"] = label
        if permissions is not None:
            body["permissions"] = list(permissions) if self.name == "gaiaex" else \
                [_SCOPES[permission] for permission in permissions]
        if ip_whitelist is not None:
            body["ip_whitelist" if self.name == "gaiaex" else "ipWhitelist"] = list(ip_whitelist)
        return body


GAIAEX = WireProfile("gaiaex", "/v1/trade/api-keys", ref_field="api_key", key_id_field="api_key")
ZDEX = WireProfile("zdex", "/v1/api-keys", ref_field="id", key_id_field="apiKey")
PROFILES = [GAIAEX, ZDEX]
