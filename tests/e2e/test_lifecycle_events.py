"""Lifecycle events through the local server (issue 16): a key created over HTTP is published as
ApiKeyCreated, which `keygate dev events` shows, and no event carries the secret the create answered."""

from __future__ import annotations

import json
import time

from tests.support.local_server import AppUser, LocalServer

# How long the server may take to deliver its stream to the publisher and the bus to its events file (it
# polls every half second); a deadline for waiting, not a timed assertion.
DELIVERY_DEADLINE_SECONDS = 30


def events_of(server: LocalServer, detail_type: str, key_id: str) -> list[dict]:
    """`keygate dev events --type <detail_type>`, waited for until it shows an event of the key."""
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while True:
        printed = server.keygate("events", "--type", detail_type).stdout
        events = [json.loads(line) for line in printed.splitlines() if line.strip()]
        mine = [event for event in events if event["detail"]["api_key"] == key_id]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


def test_a_key_created_over_http_is_shown_by_keygate_dev_events(default_server: LocalServer):
    # Given a user of the app on the local server
    user = AppUser(default_server, "events-e2e")
    # When they create a key, then revoke it
    created = user.call("POST", "/v1/trade/api-keys", action="api_keys:create",
                        body={"label": "mail me", "permissions": ["read"]})
    assert created.status_code == 200, created.text
    key_id, secret = created.json()["api_key"], created.json()["api_secret"]
    # Then `keygate dev events` shows ApiKeyCreated for the key, with its user, prefix, label and IP
    [event] = events_of(default_server, "ApiKeyCreated", key_id)
    assert event["source"] == "keygate" and event["detail-type"] == "ApiKeyCreated"
    detail = event["detail"]
    assert detail["user_id"] == "events-e2e" and detail["label"] == "mail me"
    assert key_id.startswith(detail["key_prefix"]) and detail["source_ip"] and detail["event_id"]
    assert detail["changes"]["permissions"] == ["read"]
    # And a revocation follows as ApiKeyRevoked
    revoked = user.call("DELETE", f"/v1/trade/api-keys/{key_id}", action="api_keys:revoke")
    assert revoked.status_code == 200, revoked.text
    [revocation] = events_of(default_server, "ApiKeyRevoked", key_id)
    assert revocation["detail"]["event_id"] != detail["event_id"]
    # And nothing KeyGate published carries the secret
    assert secret not in default_server.keygate("events").stdout


def test_the_expiry_schedule_runs_on_demand(default_server: LocalServer):
    ran = default_server.keygate("events", "--expiry-now")
    assert "expiry notices:" in ran.stderr and '"failed": []' in ran.stderr
