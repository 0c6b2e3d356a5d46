"""KeyGate's own step-up tokens (keygate.stepup_issuer) signed by a KMS key on moto (ECC_NIST_P256,
kms:Sign with MessageType RAW, kms:GetPublicKey): a token round-trips, and every token that is not a
current KeyGate step-up token for this audience is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from keygate.config import ConfigError
from keygate.errors import ErrorCode, ServiceUnavailable
from keygate.stepup_issuer import (
    TOKEN_TYPE,
    StepUpIssuer,
    StepUpIssuerConfig,
    StepUpTokenRefused,
    der_to_raw,
    sign_jwt,
)
from keygate.storage import aws as layer_aws
from keygate.storage.kms import KmsSigner, forget_public_keys
from tests.support.stack import REGION

CHANGE = "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def kms(aws: None) -> Iterator[object]:
    forget_public_keys()
    yield boto3.client("kms", region_name=REGION)
    forget_public_keys()


def new_key(kms) -> str:
    return kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]


@pytest.fixture
def key_id(kms) -> str:
    return new_key(kms)


def issuer(key_id: str, *, at: datetime | None = None, **settings: object) -> StepUpIssuer:
    config = StepUpIssuerConfig(signing_key_id=key_id, **settings)
    return StepUpIssuer(config, KmsSigner(layer_aws.clients()),
                        clock=(lambda: at) if at is not None else (lambda: datetime.now(UTC)))


def claims_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[1]))


@contextmanager
def refused(reason: str) -> Iterator[pytest.ExceptionInfo]:
    """pytest.raises for a StepUpTokenRefused with this reason (and STEP_UP_REQUIRED)."""
    with pytest.raises(StepUpTokenRefused) as error:
        yield error
    assert error.value.reason == reason, error.value.reason
    assert error.value.code is ErrorCode.STEP_UP_REQUIRED


# -------------------------------------------------------------------- settings
def test_settings_come_from_the_environment():
    config = StepUpIssuerConfig.from_environ({"STEP_UP_SIGNING_KEY_ID": "arn:aws:kms:eu-west-1:1:key/k",
                                              "STEP_UP_TTL_SECONDS": "90", "SESSION_AUDIENCE": "keygate"})
    assert config == StepUpIssuerConfig(signing_key_id="arn:aws:kms:eu-west-1:1:key/k", issuer="keygate",
                                        audience="keygate-step-up", ttl_seconds=90)
    with pytest.raises(ConfigError) as error:
        StepUpIssuerConfig.from_environ({"STEP_UP_TOKEN_AUDIENCE": "keygate", "SESSION_AUDIENCE": "keygate",
                                         "STEP_UP_TTL_SECONDS": "3600"})
    assert "STEP_UP_SIGNING_KEY_ID" in str(error.value)
    assert "must differ from SESSION_AUDIENCE" in str(error.value)
    assert "STEP_UP_TTL_SECONDS" in str(error.value)


# -------------------------------------------------------------------- round trip
def test_a_token_round_trips_with_every_claim(key_id: str):
    # Given KeyGate's issuer on a KMS key
    signer = issuer(key_id)
    # When it issues a token for alice's approved change
    issued = signer.issue(user_id="alice", action="api_keys:update", target="kgk_a", change=CHANGE)
    # Then the token verifies and carries what was approved, with a kind marker in header and claims
    verified = signer.verify(issued.token)
    assert (verified.user_id, verified.action, verified.target, verified.change, verified.jti) == \
        ("alice", "api_keys:update", "kgk_a", CHANGE, issued.jti)
    assert verified.claims["amr"] == ["passkey"]
    assert verified.claims["token_use"] == "step_up"
    assert (verified.claims["iss"], verified.claims["aud"]) == ("keygate", "keygate-step-up")
    assert verified.expires_at - verified.issued_at == timedelta(seconds=120)
    assert (verified.issued_at, verified.expires_at) == (issued.issued_at, issued.expires_at)
    assert jwt.get_unverified_header(issued.token) == {"alg": "ES256", "typ": TOKEN_TYPE}
    # And every token has its own id
    assert signer.issue(user_id="alice", action="api_keys:update", target="kgk_a", change=CHANGE).jti != issued.jti


def test_an_action_without_target_has_no_target_claim(key_id: str):
    signer = issuer(key_id)
    token = signer.issue(user_id="alice", action="api_keys:create", target=None, change=CHANGE).token
    assert "target" not in claims_of(token)
    assert signer.verify(token).target is None


def test_the_signature_is_raw_r_and_s_that_verifies_with_the_kms_public_key(kms, key_id: str):
    # Given a token signed through KMS
    token = issuer(key_id).issue(user_id="alice", action="api_keys:revoke", target="kgk_a", change=CHANGE).token
    signing_input, _, signature = token.rpartition(".")
    raw = b64url_decode(signature)
    # Then its signature is R‖S, 64 bytes, not KMS's DER
    assert len(raw) == 64
    # And it verifies with the public key from kms:GetPublicKey over the JWS signing input
    public_key = load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))


def test_der_signatures_with_short_coordinates_keep_their_width():
    # Given a DER signature whose R and S are small numbers (DER drops leading zero bytes)
    der = encode_dss_signature(1, 2 ** 200)
    # Then R‖S pads each to 32 bytes
    assert der_to_raw(der) == (1).to_bytes(32, "big") + (2 ** 200).to_bytes(32, "big")


def test_the_public_key_is_fetched_once_per_key(key_id: str, monkeypatch: pytest.MonkeyPatch):
    # Given a count of kms:GetPublicKey calls
    client = layer_aws.clients().kms
    calls: list[str] = []
    original = client.get_public_key

    def counted(**kwargs):
        calls.append(kwargs["KeyId"])
        return original(**kwargs)

    monkeypatch.setattr(client, "get_public_key", counted)
    # When two issuers of the process verify three tokens
    token = issuer(key_id).issue(user_id="alice", action="api_keys:create", target=None, change=CHANGE).token
    for verifier in (issuer(key_id), issuer(key_id), issuer(key_id)):
        verifier.verify(token)
    # Then the key was fetched once
    assert calls == [key_id]


# ------------------------------------------------------------------- refusals
def test_a_tampered_payload_is_refused(key_id: str):
    # Given a token for key A, whose payload is changed to name key B
    signer = issuer(key_id)
    header, payload, signature = signer.issue(user_id="alice", action="api_keys:update", target="kgk_a",
                                              change=CHANGE).token.split(".")
    tampered = b64url(json.dumps({**claims_of(f"{header}.{payload}.x"), "target": "kgk_b"}).encode())
    # Then it is refused
    with refused("signature"):
        signer.verify(f"{header}.{tampered}.{signature}")


def test_a_token_for_another_audience_is_refused(key_id: str):
    token = issuer(key_id, audience="keygate").issue(user_id="alice", action="api_keys:create", target=None,
                                                     change=CHANGE).token
    with refused("audience"):
        issuer(key_id).verify(token)


def test_a_token_of_another_issuer_is_refused(key_id: str):
    token = issuer(key_id, issuer="someone-else").issue(user_id="alice", action="api_keys:create", target=None,
                                                        change=CHANGE).token
    with refused("issuer"):
        issuer(key_id).verify(token)


def test_an_expired_token_is_refused(key_id: str):
    # Given a token issued 2 minutes and 10 seconds ago (lifetime 120 s, leeway 5 s)
    old = datetime.now(UTC) - timedelta(seconds=130)
    token = issuer(key_id, at=old).issue(user_id="alice", action="api_keys:create", target=None, change=CHANGE).token
    # Then it is refused as expired
    with refused("expired") as error:
        issuer(key_id).verify(token)
    assert "expired" in error.value.message


def test_a_token_expired_within_the_leeway_is_accepted(key_id: str):
    # Given a token that expired 2 s ago (the leeway is 5 s)
    old = datetime.now(UTC) - timedelta(seconds=122)
    token = issuer(key_id, at=old).issue(user_id="alice", action="api_keys:create", target=None, change=CHANGE).token
    assert issuer(key_id).verify(token).user_id == "alice"


def test_a_token_issued_in_the_future_is_refused(key_id: str):
    ahead = datetime.now(UTC) + timedelta(seconds=60)
    token = issuer(key_id, at=ahead).issue(user_id="alice", action="api_keys:create", target=None,
                                           change=CHANGE).token
    with refused("malformed"):
        issuer(key_id).verify(token)


def _valid_claims(**changes: object) -> dict:
    now = int(time.time())
    claims = {"iss": "keygate", "aud": "keygate-step-up", "sub": "alice", "action": "api_keys:create",
              "change": CHANGE, "amr": ["passkey"], "jti": "j" * 32, "iat": now, "exp": now + 120,
              "token_use": "step_up", **changes}
    return {name: value for name, value in claims.items() if value is not None}


def test_a_token_without_the_kind_marker_is_refused(key_id: str):
    # Given tokens signed by KeyGate's own key: without token_use, with another token_use, or a session's typ
    signer = KmsSigner(layer_aws.clients())
    unmarked = sign_jwt(signer, key_id, _valid_claims(token_use=None))
    session_use = sign_jwt(signer, key_id, _valid_claims(token_use="session"))
    session_typ = sign_jwt(signer, key_id, _valid_claims(), header={"typ": "JWT"})
    untyped = sign_jwt(signer, key_id, _valid_claims(), header={})
    # Then none passes as a step-up token
    for token in (unmarked, session_use, session_typ, untyped):
        with refused("not_step_up"):
            issuer(key_id).verify(token)
    # And the same claims with both markers pass
    assert issuer(key_id).verify(sign_jwt(signer, key_id, _valid_claims())).user_id == "alice"


@pytest.mark.parametrize("changes", [{"amr": ["pwd"]}, {"amr": None}, {"action": None}, {"change": None},
                                     {"jti": "short"}, {"target": 7}, {"sub": ""}],
                         ids=["amr-pwd", "no-amr", "no-action", "no-change", "short-jti", "target-number", "no-sub"])
def test_a_token_without_what_it_confirms_is_refused(key_id: str, changes: dict):
    token = sign_jwt(KmsSigner(layer_aws.clients()), key_id, _valid_claims(**changes))
    with refused("claims"):
        issuer(key_id).verify(token)


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "sub"])
def test_a_token_without_a_registered_claim_is_refused(key_id: str, missing: str):
    token = sign_jwt(KmsSigner(layer_aws.clients()), key_id, _valid_claims(**{missing: None}))
    with refused("malformed"):
        issuer(key_id).verify(token)


def test_a_token_signed_by_another_key_is_refused(kms, key_id: str):
    # Given a token signed by another KMS key
    token = issuer(new_key(kms)).issue(user_id="alice", action="api_keys:create", target=None, change=CHANGE).token
    # Then KeyGate's issuer refuses it
    with refused("signature"):
        issuer(key_id).verify(token)


@pytest.mark.parametrize("token", ["", None, "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."])
def test_garbage_is_refused(key_id: str, token):
    with pytest.raises(StepUpTokenRefused):
        issuer(key_id).verify(token)


def test_an_hs256_token_keyed_with_the_public_key_is_refused(kms, key_id: str):
    # Given a token MACed with the (public) verification key, the classic algorithm confusion
    public_der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    header = b64url(json.dumps({"alg": "HS256", "typ": TOKEN_TYPE}).encode())
    payload = b64url(json.dumps(_valid_claims()).encode())
    mac = hmac.new(public_der, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with refused("malformed"):
        issuer(key_id).verify(f"{header}.{payload}.{b64url(mac)}")


def test_an_unreachable_or_missing_key_is_a_service_fault(kms):
    # Given a key id KMS does not know
    with pytest.raises(ServiceUnavailable):
        issuer("00000000-0000-0000-0000-000000000000").issue(user_id="alice", action="api_keys:create", target=None,
                                                              change=CHANGE)
    with pytest.raises(ServiceUnavailable):
        issuer("00000000-0000-0000-0000-000000000000").verify("a.b.c")


def test_a_key_that_is_not_p256_is_a_configuration_error(kms):
    other = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P384")["KeyMetadata"]["KeyId"]
    with pytest.raises(ConfigError, match="ECC_NIST_P256"):
        issuer(other).verify("a.b.c")
