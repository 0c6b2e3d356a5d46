"""The settings of issue 16's functions: GitHub's keys over https outside the local stage, an agent domain
that names real addresses; and the fingerprint every issued secret is found by."""

from __future__ import annotations

import hashlib
import json

import pytest

from keygate import keys
from keygate.config import ConfigError, ExchangeEventsConfig, SecretScanningConfig
from keygate.records import ApiKeyRecord, KeyStatus, now_utc
from keygate.storage import layout

AGENT = {"AGENT_DOMAIN_NAME": "GaiaEx", "AGENT_CHAIN_ID": "1",
         "AGENT_VERIFYING_CONTRACT": "0x" + "00" * 20, "EXCHANGE_AGENT_ADDRESS": "0x" + "a9" * 20}


@pytest.mark.parametrize(("stage", "url", "accepted"), [
    ("prod", "https://api.github.com/meta/public_keys/secret_scanning", True),
    ("prod", "http://127.0.0.1:8000/keys", False),
    ("local", "http://127.0.0.1:8000/keys", True),
    ("local", "http://example.com/keys", False),
    ("dev", "ftp://example.com/keys", False),
])
def test_github_keys_come_over_https_except_on_the_local_stage(stage, url, accepted):
    environ = {"STAGE": stage, "SECRET_SCANNING_KEYS_URL": url}
    if accepted:
        assert SecretScanningConfig.from_environ(environ).keys_url == url
    else:
        with pytest.raises(ConfigError, match="SECRET_SCANNING_KEYS_URL"):
            SecretScanningConfig.from_environ(environ)


@pytest.mark.parametrize(("name", "value"), [("EXCHANGE_AGENT_ADDRESS", "0x12"), ("AGENT_VERIFYING_CONTRACT", ""),
                                             ("AGENT_CHAIN_ID", "0"), ("AGENT_DOMAIN_NAME", "")])
def test_the_agent_domain_must_be_complete_and_well_formed(name, value):
    assert ExchangeEventsConfig.from_environ(AGENT).exchange_agent_address == "0x" + "a9" * 20
    with pytest.raises(ConfigError, match=name):
        ExchangeEventsConfig.from_environ({**AGENT, name: value})
    missing = {key: item for key, item in AGENT.items() if key != name}
    with pytest.raises(ConfigError, match=name):
        ExchangeEventsConfig.from_environ(missing)


def test_a_secrets_fingerprint_item_names_its_key_and_never_holds_the_secret():
    # Given a new secret and its key
    secret = keys.new_secret()
    record = ApiKeyRecord(key_id="kgk_x", user_id="alice", label="", permissions=["read"], ip_whitelist=[],
                          status=KeyStatus.ACTIVE, created_at=now_utc())
    # When its fingerprint item is built (as the create, and a rotation, store it)
    item = layout.fingerprint_item(keys.secret_fingerprint(secret), record)
    # Then it is keyed by the secret's SHA-256 (GitHub's token_hash), names the key, and holds no secret
    assert keys.secret_fingerprint(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert item["pk"] == {"S": f"SECRETHASH#{hashlib.sha256(secret.encode()).hexdigest()}"}
    assert layout.from_item(item)["key_id"] == "kgk_x" and layout.from_item(item)["user_id"] == "alice"
    assert secret not in repr(item)


def test_githubs_keys_are_refetched_for_an_unknown_identifier_at_most_once_a_minute():
    from keygate.secret_scanning import REFETCH_COOLDOWN_SECONDS, GitHubPublicKeys
    from tests.support.github import GitHubScanner

    # Given GitHub's keys document, which later gains a new key (GitHub rotates its keys)
    old, new = GitHubScanner(key_identifier="old"), GitHubScanner(key_identifier="new")
    served, fetches, now = [old.keys_document()], [], [1000.0]

    def fetch(url: str) -> bytes:
        fetches.append(url)
        return served[-1]

    public_keys = GitHubPublicKeys("https://example.test/keys", fetch=fetch, monotonic=lambda: now[0])
    # When the known key is asked for twice: one fetch
    assert public_keys.key("old") is not None and public_keys.key("old") is not None
    assert len(fetches) == 1
    # When the new key is announced and asked for within the minute: no fetch, unknown
    served.append(json.dumps({"public_keys": [*json.loads(old.keys_document())["public_keys"],
                                              *json.loads(new.keys_document())["public_keys"]]}).encode())
    now[0] += REFETCH_COOLDOWN_SECONDS - 1
    assert public_keys.key("new") is None and len(fetches) == 1
    # Then once the minute has passed, it is fetched again, once, and found
    now[0] += 1
    assert public_keys.key("new") is not None and len(fetches) == 2
    assert public_keys.key("made-up") is None and len(fetches) == 2
