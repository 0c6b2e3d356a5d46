"""Issue 15 through the local gateway (moto): Ed25519 key creation in both wire profiles, rotation with a
grace period in both, and every refusal either adds, with its status, code and message.

The pure-logic bounds (continuous traffic across a rotation, the grace's end, the janitor) are in
tests/unit/test_rotation.py; here the real handlers, storage, IAM-shaped calls and the deployed signature
authorizer (the `gate` fixture) take part.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keygate import wiring
from keygate.records import KeyStatus, now_utc
from keygate.storage import layout
from kg1 import ed25519 as kg1_ed25519
from tests.support.bots import SELF, Bot
from tests.support.errors import assert_error
from tests.support.faults import retried_after_lost_response
from tests.support.stack import gaiaex_time, onboard, run_janitor, secret_names, secret_value

ZDEX_STYLE = {"MaxActiveKeysPerUser": "5", "AllowedPermissions": "read,trade,withdraw", "StepUpRequired": "false"}


def _key_pair() -> tuple[object, str, str]:
    private = kg1_ed25519.generate_private_key()
    raw = kg1_ed25519.public_key_of(private)
    return private, kg1_ed25519.public_key_base64(raw), kg1_ed25519.public_key_pem(raw)


def rotate(client, key_id: str, user: str = "alice", **body):
    return client.call("POST", f"/v1/trade/api-keys/{key_id}/rotate", user=user, body=body)


# ------------------------------------------------------------ Ed25519 create
@pytest.mark.parametrize("form", ["base64", "pem"])
def test_an_ed25519_key_is_created_without_any_secret(client, alice, aws_calls, form):
    # Given a key pair the bot made itself
    _, public_base64, public_pem = _key_pair()
    secrets_before = secret_names()
    # When the app creates a key with its public key
    with aws_calls.recording() as operations:
        response = client.create(label="ed bot", permissions=["read", "trade"], key_type="ed25519",
                                 public_key=public_base64 if form == "base64" else public_pem)
    # Then the answer carries no secret at all (the field is left out), and says how to sign
    assert response.status == 200, response.body
    created = response.json()
    assert "api_secret" not in created and created["key_type"] == "ed25519"
    assert "private key" in created["message"]
    # And nothing was written to Secrets Manager: no CreateSecret, no new secret
    assert not [operation for operation in operations if operation.startswith("secretsmanager.")]
    assert secret_names() == secrets_before
    # And the public key lives in the key record (as base64 of its 32 raw bytes)
    record = wiring.management().keys.get_key("alice", created["api_key"])
    assert (record.key_type, record.public_key) == ("ed25519", public_base64)
    # And the list shows its type
    [listed] = [key for key in client.list().json()["keys"] if key["api_key"] == created["api_key"]]
    assert listed["key_type"] == "ed25519"


@pytest.mark.parametrize("stack_env", [ZDEX_STYLE], indirect=True)
def test_zdex_creates_an_ed25519_key_with_key_type_and_public_key(client, alice, aws_calls):
    _, public_base64, _ = _key_pair()
    with aws_calls.recording() as operations:
        response = client.call("POST", "/v1/api-keys", body={"label": "ed bot", "keyType": "ed25519",
                                                             "publicKey": public_base64})
    assert response.status == 200, response.body
    created = response.json()
    assert created["ok"] is True and created["keyType"] == "ed25519" and "secretKey" not in created
    assert not [operation for operation in operations if operation.startswith("secretsmanager.")]


def test_an_ed25519_bot_signs_its_requests_and_the_authorizer_verifies_them(gate, client, alice):
    # Given an Ed25519 key created through the API
    private, public_base64, _ = _key_pair()
    created = client.create(permissions=["read", "trade"], key_type="ed25519", public_key=public_base64).json()
    bot = Bot(created["api_key"], None, gate.clocks, private_key=private)
    # When the bot sends a signed request through the deployed authorizer
    outcome = gate.invoke(gate.event("GET", SELF, "", bot.headers()))
    # Then it is allowed; a signature by another private key is refused with its code
    assert outcome.status == 200, outcome
    impostor = Bot(created["api_key"], None, gate.clocks, private_key=kg1_ed25519.generate_private_key())
    refused = gate.invoke(gate.event("GET", SELF, "", impostor.headers()))
    assert (refused.status, refused.context["error_code"]) == (401, "SIGNATURE_MISMATCH")


EXAMPLE_PUBLIC_KEY = "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="  # docs/signing.md's Ed25519 example
SMALL_ORDER = kg1_ed25519.public_key_base64(kg1_ed25519.SMALL_ORDER_ENCODINGS[2])
RSA_PEM = ("-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMEjtRnHvUXy0ZHvFvHXVzd8wRUf1hhl\n"
           "kqbE1sYMymQCKX5i+XM4wBQA5bXWvFJtTX1hzqTjq9ZkV1fjkOkYm3MCAwEAAQ==\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize(("body", "says"), [
    ({"key_type": "ed25519"}, "public_key is required for an ed25519 key"),
    ({"key_type": "ed25519", "public_key": RSA_PEM}, "not an Ed25519"),
    ({"key_type": "ed25519", "public_key": SMALL_ORDER}, "small order"),
    ({"key_type": "ed25519", "public_key": "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O9="}, "canonical"),
    ({"public_key": "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="}, "public_key is only for ed25519 keys"),
    ({"key_type": "dsa"}, "key_type"),
], ids=["no public key", "rsa key", "small order", "non-canonical", "hmac with a public key", "unknown type"])
def test_every_create_refusal_says_what_to_fix(client, alice, body, says):
    before = secret_names()
    error = assert_error(client.create(**body), 400, "INVALID_REQUEST")
    assert says in error["message"], error
    assert secret_names() == before


# ------------------------------------------------------------------ rotation
def test_rotation_returns_the_new_secret_once_and_when_it_is_usable(client, alice):
    created = client.create(label="bot", permissions=["read", "trade"]).json()
    before = now_utc()
    # When the app rotates the key with the default grace
    response = rotate(client, created["api_key"])
    # Then the new secret comes back once, with usable_from at most RecordCacheTtlSeconds away (5 s) and the
    # previous secret's end an hour away; the key's id, label, permissions stay
    assert response.status == 200, response.body
    rotated = response.json()
    assert set(rotated) == {"success", "api_key", "api_secret", "key_type", "usable_from", "previous_valid_until",
                            "message"}
    assert rotated["api_key"] == created["api_key"] and rotated["api_secret"] != created["api_secret"]
    usable_from = gaiaex_time(rotated["usable_from"])
    assert before <= usable_from <= now_utc() + timedelta(seconds=6)
    assert abs(gaiaex_time(rotated["previous_valid_until"]) - (before + timedelta(hours=1))) < timedelta(seconds=5)
    [listed] = client.list().json()["keys"]
    assert (listed["api_key"], listed["label"], listed["permissions"]) == (created["api_key"], "bot",
                                                                         ["read", "trade"])
    # And Secrets Manager holds both secrets, the new one under its own version's name
    record = wiring.management().keys.get_key("alice", created["api_key"])
    assert wiring.management().secrets.read(created["api_key"], record.secret_version) == rotated["api_secret"]
    assert secret_value(created["api_key"]) == created["api_secret"]
    # And the audit log has the rotation, without any secret
    audit = client.audit(created["api_key"]).json()["audit"]
    assert audit[0]["action"] == "key_rotated" and audit[0]["data"]["grace_seconds"] == 3600
    assert rotated["api_secret"] not in str(audit) and created["api_secret"] not in str(audit)


def test_the_authorizer_takes_the_new_secret_after_the_record_ttl_and_the_old_one_during_the_grace(gate, client,
                                                                                                  alice):
    key = gate.create_key(permissions=["read", "trade"])
    assert gate.send(key).status == 200  # the record (old secret only) is now cached
    rotated = rotate(client, key[0], grace_seconds=600).json()
    new = (key[0], rotated["api_secret"])
    # Before the record's cache expires only the old secret verifies (a failed signature forces no re-read)
    assert gate.send(new).context["error_code"] == "SIGNATURE_MISMATCH"
    assert gate.send(key).status == 200
    # Once RecordCacheTtlSeconds have passed, both do
    gate.clocks.advance(5)
    assert gate.send(new).status == 200
    assert gate.send(key).status == 200
    # After the grace (600 s after the rotation) only the new one
    gate.clocks.advance(600)
    assert gate.send(key).context["error_code"] == "SIGNATURE_MISMATCH"
    assert gate.send(new).status == 200


@pytest.mark.parametrize("stack_env", [ZDEX_STYLE], indirect=True)
def test_zdex_rotates_by_id_with_camel_case_fields(client, alice):
    created = client.call("POST", "/v1/api-keys", body={"label": "bot"}).json()
    response = client.call("POST", f"/v1/api-keys/{created['id']}/rotate", body={"graceSeconds": 0})
    assert response.status == 200, response.body
    rotated = response.json()
    assert set(rotated) == {"ok", "id", "apiKey", "secretKey", "keyType", "usableFrom", "previousValidUntil",
                            "message"}
    assert (rotated["id"], rotated["apiKey"]) == (created["id"], created["apiKey"])
    assert rotated["secretKey"] != created["secretKey"]
    assert rotated["previousValidUntil"].endswith("Z") and "." in rotated["usableFrom"]


def test_an_ed25519_key_rotates_to_the_new_public_key_without_any_secret(client, alice, aws_calls):
    _, public_base64, _ = _key_pair()
    created = client.create(key_type="ed25519", public_key=public_base64).json()
    _, new_public, new_pem = _key_pair()
    with aws_calls.recording() as operations:
        response = rotate(client, created["api_key"], public_key=new_pem, grace_seconds=60)
    assert response.status == 200, response.body
    assert "api_secret" not in response.json() and response.json()["key_type"] == "ed25519"
    assert not [operation for operation in operations if operation.startswith("secretsmanager.")]
    record = wiring.management().keys.get_key("alice", created["api_key"])
    assert (record.public_key, record.grace.public_key) == (new_public, public_base64)


def test_a_rotation_during_a_grace_ends_the_earlier_one_at_once(client, alice):
    created = client.create().json()
    first = rotate(client, created["api_key"]).json()
    second = rotate(client, created["api_key"]).json()
    record = wiring.management().keys.get_key("alice", created["api_key"])
    # The record now names the second secret and, in the grace, the first rotation's; the original is gone
    assert wiring.management().secrets.read(created["api_key"], record.secret_version) == second["api_secret"]
    assert wiring.management().secrets.read(created["api_key"], record.grace.secret_version) == first["api_secret"]
    run_janitor()
    assert secret_value(created["api_key"]) is None


# ------------------------------------------------------------ rotation refusals
def test_rotating_a_revoked_key_is_400(client, alice):
    key_id = client.create().json()["api_key"]
    client.revoke(key_id)
    error = assert_error(rotate(client, key_id), 400, "KEY_REVOKED")
    assert "create a new key" in error["message"]


def test_rotating_an_expired_key_is_400(client, alice):
    key_id = client.create(expires_days=1).json()["api_key"]
    keys = wiring.management().keys
    record = keys.get_key("alice", key_id)
    wiring.management().keys._clients.dynamodb.put_item(
        TableName=keys._table, Item=layout.record_item(record.changed(expires_at=datetime.now(UTC)
                                                                      - timedelta(seconds=1))))
    before = secret_names()
    assert_error(rotate(client, key_id), 400, "KEY_EXPIRED")
    assert secret_names() == before


@pytest.mark.parametrize(("body", "says"), [
    ({"grace_seconds": -1}, "grace_seconds"),
    ({"grace_seconds": 86401}, "grace_seconds"),
    ({"grace_seconds": "60"}, "grace_seconds"),
    ({"public_key": "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="}, "send no public key"),
    ({"secret": "mine"}, "not a known field"),
], ids=["negative grace", "grace over a day", "grace as text", "public key for an hmac key", "unknown field"])
def test_every_rotation_refusal_says_what_to_fix(client, alice, body, says):
    key_id = client.create().json()["api_key"]
    error = assert_error(rotate(client, key_id, **body), 400, "INVALID_REQUEST")
    assert says in error["message"], error


def test_an_ed25519_rotation_without_a_new_public_key_is_400(client, alice):
    _, public_base64, _ = _key_pair()
    key_id = client.create(key_type="ed25519", public_key=public_base64).json()["api_key"]
    error = assert_error(rotate(client, key_id), 400, "INVALID_REQUEST")
    assert "new public key" in error["message"]
    assert_error(rotate(client, key_id, public_key=SMALL_ORDER), 400, "INVALID_REQUEST")


def test_a_rotation_whose_answer_was_lost_stays_committed_though_another_change_landed_before_the_resend(
        client, alice):
    # Given a key, and a rotation whose transaction commits but whose answer is lost: botocore sends it again
    # (and its conditions fail against the first attempt's writes), and a label change from another tab lands
    # in between, so the record no longer carries the rotation's change id
    key_id = client.create(label="bot").json()["api_key"]
    with retried_after_lost_response(idempotent=False,
                                     meanwhile=lambda: client.update(key_id, label="renamed")):
        # When the rotation is answered
        rotated = rotate(client, key_id, grace_seconds=600)
    # Then it is answered as what committed, once: the new secret, which the record names and Secrets Manager
    # still holds (not rotated again onto itself, nor deleted as never committed), the old one in its grace
    assert rotated.status == 200, rotated.json()
    record = wiring.management().keys.get_key("alice", key_id)
    assert record.label == "renamed" and record.status is KeyStatus.ACTIVE
    assert wiring.management().secrets.read(key_id, record.secret_version) == rotated.json()["api_secret"]
    assert record.grace is not None and wiring.management().secrets.read(key_id, record.grace.secret_version)
    audit = [entry["action"] for entry in client.audit(key_id).json()["audit"]]
    assert audit.count("key_rotated") == 1, audit


def test_the_audit_log_shows_a_rotation_with_when_the_previous_secret_stops(client, alice):
    # Given a key rotated with a 10-minute grace
    key_id = client.create(label="bot").json()["api_key"]
    rotated = rotate(client, key_id, grace_seconds=600).json()
    # When its audit log is read
    [entry] = [entry for entry in client.audit(key_id).json()["audit"] if entry["action"] == "key_rotated"]
    # Then the entry names the grace and its end, written as GaiaEx writes times (as the rotation answered it)
    assert entry["data"]["grace_seconds"] == 600 and entry["data"]["key_type"] == "hmac-sha256"
    assert abs(gaiaex_time(entry["data"]["previous_valid_until"]) - gaiaex_time(rotated["previous_valid_until"])) \
        <= timedelta(seconds=1)


def test_another_users_key_is_404_and_unchanged(client, alice):
    onboard("bob")
    key_id = client.create("bob").json()["api_key"]
    assert_error(rotate(client, key_id), 404, "KEY_NOT_FOUND")
    assert wiring.management().keys.get_key("bob", key_id).status is KeyStatus.ACTIVE
    assert wiring.management().keys.get_key("bob", key_id).grace is None


def test_a_step_up_for_another_action_is_403(client, alice):
    key_id = client.create().json()["api_key"]
    token = client.step_up("alice", "api_keys:update")
    error = assert_error(client.call("POST", f"/v1/trade/api-keys/{key_id}/rotate", body={}, step_up=token),
                         403, "STEP_UP_REQUIRED")
    assert "api_keys:rotate" in error["message"]
    assert_error(client.call("POST", f"/v1/trade/api-keys/{key_id}/rotate", body={}, step_up=None),
                 403, "STEP_UP_REQUIRED")


@pytest.mark.parametrize("stack_env", [ZDEX_STYLE], indirect=True)
@pytest.mark.parametrize(("route", "body", "says"), [
    ("create", {"label": "bot", "keyType": "ed25519"}, "publicKey is required for an ed25519 key"),
    ("create", {"label": "bot", "keyType": "ed25519", "publicKey": SMALL_ORDER}, "small order"),
    ("create", {"label": "bot", "keyType": "ed25519", "publicKey": RSA_PEM}, "not an Ed25519"),
    ("create", {"label": "bot", "publicKey": EXAMPLE_PUBLIC_KEY}, "publicKey is only for ed25519 keys"),
    ("rotate", {"graceSeconds": 86401}, "graceSeconds"),
    ("rotate", {"grace_seconds": 60}, "is not a known field"),
    ("rotate", {"publicKey": "DAN+6JEhx8AXpAfhAEBAplSmovBkWV+KxT5TsT/J0O8="}, "send no public key"),
    ("rotate an ed25519 key", {}, "send its new public key"),
    ("rotate an ed25519 key", {"publicKey": EXAMPLE_PUBLIC_KEY}, "The public key sent is already this key's"),
])
def test_every_zdex_refusal_says_what_to_fix(client, alice, stack_env, route, body, says):
    if route == "create":
        response = client.call("POST", "/v1/api-keys", body=body)
    else:
        key = {"keyType": "ed25519", "publicKey": EXAMPLE_PUBLIC_KEY} if route.endswith("ed25519 key") else {}
        handle = client.call("POST", "/v1/api-keys", body={"label": "bot", **key}).json()["id"]
        response = client.call("POST", f"/v1/api-keys/{handle}/rotate", body=body)
    error = assert_error(response, 400, "INVALID_REQUEST")
    # And it never names GaiaEx's public_key, a field ZDEX refuses as unknown
    assert says in error["message"] and "public_key" not in error["message"], error


@pytest.mark.parametrize("stack_env", [ZDEX_STYLE], indirect=True)
def test_zdex_rotating_a_revoked_key_is_400_and_an_unknown_id_404(client, alice, stack_env):
    handle = client.call("POST", "/v1/api-keys", body={"label": "bot"}).json()["id"]
    client.call("DELETE", f"/v1/api-keys/{handle}")
    assert_error(client.call("POST", f"/v1/api-keys/{handle}/rotate", body={}), 400, "KEY_REVOKED")
    assert_error(client.call("POST", "/v1/api-keys/c000000000000000000000000/rotate", body={}), 404, "KEY_NOT_FOUND")
