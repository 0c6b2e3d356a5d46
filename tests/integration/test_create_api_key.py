"""POST /v1/trade/api-keys: success shape, defaults, the key limit and the withdraw scope.

Field validation lives in test_validation_matrix.py, step-up in test_step_up.py and
prerequisites in test_prerequisites.py.
"""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from keygate import keys
from keygate.profiles.gaiaex import CreateApiKeyRequest
from keygate.records import now_utc
from keygate_dev.events import seed_key
from tests.support.errors import assert_error
from tests.support.stack import gaiaex_time, onboard, secret_names, secret_value, state_snapshot

CREATED_FIELDS = {"api_key", "api_secret", "key_prefix", "label", "permissions", "ip_whitelist", "created_at",
                  "expires_at", "message", "key_type"}
WITHDRAW_ENABLED = {"AllowedPermissions": "read,trade,withdraw"}


def test_create_returns_the_key_and_its_secret_with_the_documented_fields(client, alice):
    # Given an onboarded user
    before = now_utc()
    # When she creates a trade key with a whitelist and an expiry
    response = client.create(label="  grid bot  ", permissions=["trade", "read"],
                             ip_whitelist=["198.51.100.7/32", "2001:DB8::/48"], expires_days=90)
    # Then she gets 200 with exactly the documented fields, normalised
    assert response.status == 200, response.body
    created = response.json()
    assert set(created) == CREATED_FIELDS
    assert keys.is_well_formed_key_id(created["api_key"], "kgk_")
    assert keys.is_well_formed_secret(created["api_secret"])
    assert created["key_prefix"] == created["api_key"][:10] and created["key_prefix"].startswith("kgk_")
    assert created["label"] == "grid bot"
    assert created["permissions"] == ["read", "trade"]
    assert created["ip_whitelist"] == ["198.51.100.7", "2001:db8::/48"]
    created_at = gaiaex_time(created["created_at"])
    assert before - timedelta(seconds=1) <= created_at <= now_utc()
    assert gaiaex_time(created["expires_at"]) == created_at + timedelta(days=90)
    assert created["message"] == "Save your API secret now. It will NOT be shown again."
    # And the response may not be cached anywhere on the way
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    # And the secret is what Secrets Manager holds for the key
    assert secret_value(created["api_key"]) == created["api_secret"]


@pytest.mark.parametrize("raw_body", [None, "", "   \n", "{}"], ids=["no-body", "empty", "whitespace", "empty-object"])
def test_an_empty_create_gets_the_documented_defaults(client, alice, raw_body):
    # Given a create without any field
    # When it is sent
    response = client.call("POST", "/v1/trade/api-keys", raw_body=raw_body)
    # Then the key is read-only, unlabelled, unrestricted and never expires
    assert response.status == 200, response.body
    created = response.json()
    assert (created["label"], created["permissions"], created["ip_whitelist"], created["expires_at"]) == \
        ("", ["read"], [], None)


@pytest.mark.parametrize("days", [1, 3650])
def test_expires_days_boundaries_set_the_expiry(client, alice, days):
    created = client.create(expires_days=days).json()
    assert gaiaex_time(created["expires_at"]) - gaiaex_time(created["created_at"]) == timedelta(days=days)


def test_create_records_its_audit_entry_with_the_gateway_source_ip(client, alice):
    # Given a request whose X-Forwarded-For claims another address than API Gateway saw
    response = client.call("POST", "/v1/trade/api-keys", body={"label": "bot"}, source_ip="198.51.100.23",
                           headers={"X-Forwarded-For": "192.0.2.99"})
    key_id = response.json()["api_key"]
    # When the audit log is read
    entries = client.audit(key_id).json()["audit"]
    # Then it holds one key_created entry from the source IP, with the key's settings
    assert [(entry["action"], entry["ip_address"]) for entry in entries] == [("key_created", "198.51.100.23")]
    assert entries[0]["data"] == {"label": "bot", "permissions": ["read"], "ip_whitelist": [], "expires_at": None,
                                  "key_type": "hmac-sha256"}
    assert entries[0]["details"] == "Key created with permissions: [read]"


# ---------------------------------------------------------------- key limit
def test_the_default_limit_is_the_stack_parameter_default_of_ten(client, alice):
    # Given ten active keys
    for number in range(10):
        assert client.create(label=f"bot {number}").status == 200
    before = state_snapshot()
    # When an eleventh is created
    refused = client.create(label="one too many")
    # Then it is refused, and no secret or record was left behind
    assert_error(refused, 400, "KEY_LIMIT_REACHED")
    assert "10" in refused.json()["error"]["message"]
    assert state_snapshot() == before


@pytest.mark.parametrize("stack_env", [{"MaxActiveKeysPerUser": "2"}], indirect=True)
def test_the_limit_follows_the_stack_parameter(client, alice):
    assert client.create().status == 200
    assert client.create().status == 200
    assert_error(client.create(), 400, "KEY_LIMIT_REACHED")


@pytest.mark.parametrize("stack_env", [{"MaxActiveKeysPerUser": "2"}], indirect=True)
def test_revoked_and_expired_keys_do_not_count_towards_the_limit(client, alice, identity):
    # Given a limit of 2, a revoked key, a key that expired yesterday and one active key
    seed_key("alice", revoked=True)
    seed_key("alice", at=now_utc() - timedelta(days=2), expires_days=1)
    seed_key("alice")
    # When she creates another key
    # Then it is accepted: only one key was active
    assert client.create().status == 200
    # And the next one reaches the limit
    assert_error(client.create(), 400, "KEY_LIMIT_REACHED")


@pytest.mark.parametrize("stack_env", [{"MaxActiveKeysPerUser": "1"}], indirect=True)
def test_revoking_a_key_frees_its_place(client, alice):
    first = client.create().json()["api_key"]
    assert_error(client.create(), 400, "KEY_LIMIT_REACHED")
    assert client.revoke(first).status == 200
    assert client.create().status == 200


def test_the_limit_is_per_user(client, alice, identity):
    # Given alice at the limit
    for _ in range(10):
        seed_key("alice")
    assert_error(client.create(), 400, "KEY_LIMIT_REACHED")
    onboard("bob")
    # When bob creates a key
    # Then alice's keys do not count for him
    assert client.create(user="bob").status == 200


# ---------------------------------------------------------------- withdraw
def test_withdraw_is_refused_unless_the_stack_allows_it(client, alice):
    before = secret_names()
    error = assert_error(client.create(permissions=["read", "withdraw"], ip_whitelist=["198.51.100.7"]),
                         400, "INVALID_REQUEST")
    assert "withdraw" in error["message"]
    assert secret_names() == before


@pytest.mark.parametrize("stack_env", [WITHDRAW_ENABLED], indirect=True)
def test_withdraw_when_allowed_needs_an_ip_whitelist(client, alice):
    # Given a stack that lists withdraw in AllowedPermissions
    # When a withdraw key is created without a whitelist
    error = assert_error(client.create(permissions=["read", "withdraw"]), 400, "INVALID_REQUEST")
    # Then it is refused, naming the missing whitelist
    assert "IP whitelist" in error["message"]
    assert_error(client.create(permissions=["withdraw"], ip_whitelist=[]), 400, "INVALID_REQUEST")
    # And with a whitelist it is created
    created = client.create(permissions=["withdraw", "read"], ip_whitelist=["198.51.100.7"])
    assert created.status == 200, created.body
    assert created.json()["permissions"] == ["read", "withdraw"]


@pytest.mark.parametrize("stack_env", [WITHDRAW_ENABLED], indirect=True)
@pytest.mark.parametrize(("whitelist", "accepted"), [
    (["0.0.0.0/1", "128.0.0.0/1"], False),          # every address, in two halves
    (["198.51.100.0/23"], False),
    (["198.51.100.0/24", "2001:db8:1::/48"], True),
    (["2001:db8::/47"], False),
    (["::/1", "8000::/1"], False),
])
def test_withdraw_keys_need_narrow_whitelist_entries(client, alice, whitelist, accepted):
    # When a withdraw key is created with wide or narrow whitelist entries
    answer = client.create(permissions=["read", "withdraw"], ip_whitelist=whitelist)
    # Then only entries of at most a /24 (IPv4) or /48 (IPv6) are accepted
    if accepted:
        assert answer.status == 200, answer.body
    else:
        assert "/24" in assert_error(answer, 400, "INVALID_REQUEST")["message"]
    # And a key without withdraw may still use wide blocks
    assert client.create(permissions=["read"], ip_whitelist=whitelist).status == 200


def test_an_ipv4_mapped_ipv6_entry_is_stored_as_the_ipv4_the_authorizer_compares(client, alice):
    # When a whitelist names IPv4 hosts and networks in their IPv4-mapped IPv6 form
    created = client.create(ip_whitelist=["::ffff:198.51.100.7", "::ffff:203.0.113.0/120"])
    # Then they are stored as IPv4, the form a mapped client address is matched in
    assert created.status == 200, created.body
    assert created.json()["ip_whitelist"] == ["198.51.100.7", "203.0.113.0/24"]


def test_a_request_validated_without_a_context_still_follows_the_stacks_allowed_permissions(alice):
    # Given a stack without withdraw, and a caller that passes no validation context
    # When it validates a create request asking for withdraw
    # Then the stack's own list applies: the request is refused, never "everything allowed"
    with pytest.raises(ValidationError, match="not enabled on this exchange"):
        CreateApiKeyRequest.model_validate({"permissions": ["read", "withdraw"], "ip_whitelist": ["198.51.100.7"]})
    # And a permission the stack enables is accepted
    assert CreateApiKeyRequest.model_validate({"permissions": ["trade"]}).permissions == ["trade"]
