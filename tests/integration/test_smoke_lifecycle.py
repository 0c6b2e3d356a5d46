"""One pass through every management route (details live in the per-route tests)."""

from tests.support.errors import assert_error


def test_create_list_update_audit_revoke(client, alice):
    # Given an onboarded user
    # When she creates a key
    created = client.create(label="bot", permissions=["read", "trade"], ip_whitelist=["198.51.100.0/24"])
    # Then the secret is returned once with the key's metadata
    assert created.status == 200, created.body
    key = created.json()
    assert key["api_secret"].startswith("kgs_") and key["api_key"].startswith("kgk_")

    listed = client.list().json()
    assert [entry["api_key"] for entry in listed["keys"]] == [key["api_key"]]
    assert "api_secret" not in listed["keys"][0]

    updated = client.update(key["api_key"], label="renamed")
    assert updated.status == 200 and updated.json()["updated_fields"] == ["label"]

    revoked = client.revoke(key["api_key"])
    assert revoked.status == 200 and revoked.json()["already_revoked"] is False

    audit = client.audit(key["api_key"]).json()
    assert [entry["action"] for entry in audit["audit"]] == ["key_revoked", "key_updated", "key_created"]
    assert_error(client.update(key["api_key"], label="again"), 400, "KEY_REVOKED")
