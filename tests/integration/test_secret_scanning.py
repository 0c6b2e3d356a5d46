"""GitHub's secret scanning partner endpoint through the local gateway: reports signed with a locally generated
ECDSA P-256 key; a leaked secret's key is revoked (and refused by the signature authorizer within
RecordCacheTtlSeconds), a bad signature revokes nothing, and every token is answered by its hash."""

from __future__ import annotations

import hashlib
import json

import pytest

from keygate import keys
from keygate.config import AuthorizerConfig
from tests.support.github import ENDPOINT, GitHubScanner, report
from tests.support.stack import state_snapshot, table_items


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> GitHubScanner:
    """GitHub, serving its public keys at SecretScanningKeysUrl (the fetch is counted)."""
    scanner = GitHubScanner()
    scanner.fetches = []  # type: ignore[attr-defined]

    def fetch(url: str) -> bytes:
        scanner.fetches.append(url)  # type: ignore[attr-defined]
        return scanner.keys_document()

    monkeypatch.setattr("keygate.secret_scanning._fetch", fetch)
    return scanner


def _post(gate_or_client, body: bytes, headers: dict[str, str]):
    client = getattr(gate_or_client, "client", gate_or_client)
    return client.gateway.request("POST", ENDPOINT, headers=headers, body=body)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_leaked_secret_is_revoked_and_then_refused_by_the_authorizer(gate, github):
    # Given a bot's key the signature authorizer has just let in
    key = gate.create_key(permissions=["read", "trade"])
    assert gate.send(key).status == 200
    # When GitHub reports its secret, found in a public repository
    body = report(key[1], url="https://github.com/octo/bot/blob/main/.env")
    answer = _post(gate, body, github.headers(body))
    # Then GitHub gets its answer: the token's hash (never the token), its type, true_positive
    assert answer.status == 200
    assert answer.json() == [{"token_hash": _hash(key[1]), "token_type": "keygate_api_secret",
                              "label": "true_positive"}]
    assert key[1] not in answer.body
    # And the key is revoked, audited as leaked (the user sees it in the key's audit log) with the reported URL
    assert [entry["action"] for entry in gate.client.audit(key[0]).json()["audit"]][0] == "key_revoked_leaked"
    [entry] = [item for item in table_items() if item["pk"] == f"AUDIT#{key[0]}" and item["event"] ==
               "key_revoked_leaked"]
    assert entry["details"]["url"] == "https://github.com/octo/bot/blob/main/.env"
    assert entry["details"]["reporter"] == "github_secret_scanning" and key[1] not in json.dumps(entry)
    # And the signature authorizer refuses it once its cached record is RecordCacheTtlSeconds old
    gate.clocks.advance(AuthorizerConfig.from_environ().record_cache_ttl_seconds)
    refused = gate.send(key)
    assert refused.status == 401 and refused.context["error_code"] == "KEY_REVOKED"


@pytest.mark.parametrize("which", ["rotated-away secret", "new secret"])
def test_both_secrets_of_a_rotated_key_find_it(gate, github, which):
    # Given a key rotated with a grace: its old secret still verifies, and the new one does too
    key = gate.create_key(permissions=["read"])
    rotated = gate.client.rotate(key[0], grace_seconds=3600)
    assert rotated.status == 200, rotated.body
    leaked = key[1] if which == "rotated-away secret" else rotated.json()["api_secret"]
    # When GitHub reports one of them
    body = report(leaked)
    answer = _post(gate, body, github.headers(body))
    # Then it is the key's (true_positive), and the key is revoked
    assert answer.json() == [{"token_hash": _hash(leaked), "token_type": "keygate_api_secret",
                              "label": "true_positive"}]
    assert gate.client.audit(key[0]).json()["audit"][0]["action"] == "key_revoked_leaked"


def test_a_report_again_is_still_a_true_positive_and_changes_nothing(gate, github):
    key = gate.create_key()
    body = report(key[1])
    assert _post(gate, body, github.headers(body)).json()[0]["label"] == "true_positive"
    before = state_snapshot()
    again = _post(gate, body, github.headers(body))
    assert again.json()[0]["label"] == "true_positive" and state_snapshot() == before


@pytest.mark.parametrize("damage", ["no signature", "no identifier", "signature of another body",
                                    "unknown identifier", "another key", "not base64"])
def test_a_bad_or_missing_signature_is_401_and_revokes_nothing(gate, github, damage):
    # Given a live key and a report of its secret whose signature does not hold
    key = gate.create_key()
    body = report(key[1])
    headers = github.headers(body)
    if damage == "no signature":
        del headers["Github-Public-Key-Signature"]
    elif damage == "no identifier":
        del headers["Github-Public-Key-Identifier"]
    elif damage == "signature of another body":
        headers = github.headers(report(key[1], url="https://example.com/other"))
    elif damage == "unknown identifier":
        headers["Github-Public-Key-Identifier"] = "0" * 64
    elif damage == "another key":
        headers = GitHubScanner(key_identifier=github.key_identifier).headers(body)
    elif damage == "not base64":
        headers["Github-Public-Key-Signature"] = "%%%"
    before = state_snapshot()
    # When it is posted, then it is refused with 401, and nothing is revoked or written
    answer = _post(gate, body, headers)
    assert answer.status == 401, answer.body
    assert answer.json()["error"]["code"] in {"MISSING_HEADER", "SIGNATURE_MISMATCH"}
    assert state_snapshot() == before
    assert gate.send(key).status == 200


def test_a_mix_of_valid_unknown_and_malformed_tokens_is_answered_token_by_token(gate, github):
    # Given a report of: a live key's secret, a well-formed secret KeyGate never issued, a secret with a bad
    # checksum, a key id, a number and an empty string
    key = gate.create_key()
    never_issued = keys.new_secret()
    bad_checksum = key[1][:-1] + ("A" if key[1][-1] != "A" else "B")
    tokens = [key[1], never_issued, bad_checksum, key[0], 12345, ""]
    body = report(*tokens)
    # When GitHub posts it
    answer = _post(gate, body, github.headers(body))
    # Then each token gets its answer, in order, only the real one a true positive; none is an error
    assert answer.status == 200
    labels = [(entry["token_hash"], entry["label"]) for entry in answer.json()]
    expected_hashes = [_hash(token if isinstance(token, str) else json.dumps(token)) for token in tokens]
    assert labels == list(zip(expected_hashes, ["true_positive"] + ["false_positive"] * 5, strict=True))
    for token in tokens:
        assert not isinstance(token, str) or not token or token not in answer.body
    # And the reported key is revoked
    record = [item for item in table_items() if item.get("key_id") == key[0] and item.get("type") == "key"][0]
    assert record["status"] == "revoked"


def test_public_keys_are_cached_and_an_unknown_identifier_refetches_at_most_once_a_minute(gate, github):
    key = gate.create_key()
    body = report(keys.new_secret())
    # Given two reports signed with GitHub's key: its keys are fetched once
    for _ in range(2):
        assert _post(gate, body, github.headers(body)).status == 200
    assert len(github.fetches) == 1
    # When reports come with made-up identifiers
    for identifier in ("a" * 64, "b" * 64, "c" * 64):
        headers = {**github.headers(body), "Github-Public-Key-Identifier": identifier}
        assert _post(gate, body, headers).status == 401
    # Then they cost no further fetch within the minute
    assert len(github.fetches) == 1
    assert key
