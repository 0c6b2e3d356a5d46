"""KeyGate's WebAuthn ceremonies (keygate.passkeys), pure logic: py_webauthn against the software
authenticator of tests/support, over the in-memory store, on a clock the tests move.

Each refusal is its own test and names its reason; the DynamoDB store's semantics are checked against
the same contract in tests/integration/test_passkey_storage.py.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404  # runs this project's interpreter, no shell
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import cbor2
import pytest

from keygate.config import ConfigError
from keygate.errors import ErrorCode
from keygate.passkeys import (
    PasskeyConfig,
    PasskeyNotFound,
    PasskeyRefused,
    Passkeys,
    Purpose,
    Refusal,
    SuspectedClonedAuthenticator,
)
from tests.support.authenticator import EDDSA, ES256, CredentialExcluded, SoftAuthenticator, b64url, from_b64url
from tests.support.clocks import FixedClock
from tests.support.passkey_store import MemoryPasskeyStore

RP_ID = "app.example.com"
ORIGIN = "https://app.example.com"
CONFIG = PasskeyConfig(rp_id=RP_ID, rp_name="GaiaEx", origins=(ORIGIN, "https://www.app.example.com"))
CHANGE = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class Ceremonies:
    """Passkeys over a memory store on a fixed clock, with helpers that run a whole ceremony."""

    def __init__(self) -> None:
        self.clock = FixedClock()
        self.store = MemoryPasskeyStore()
        self.passkeys = Passkeys(CONFIG, self.store, clock=self.clock)

    def register(self, user: str = "alice", authenticator: SoftAuthenticator | None = None, *, label: str = "phone",
                 **answer: object):
        authenticator = authenticator or SoftAuthenticator(origin=ORIGIN)
        options = self.passkeys.registration_options(user)
        return self.passkeys.register(user, authenticator.create(options.options, **answer), label=label)

    def step_up_options(self, user: str = "alice", *, action: str = "api_keys:update", target: str | None = "kgk_a",
                        change: str = CHANGE):
        return self.passkeys.step_up_options(user, action=action, target=target, change=change)

    def step_up(self, authenticator: SoftAuthenticator, user: str = "alice", **answer: object):
        options = self.step_up_options(user)
        return self.passkeys.verify_step_up(user, authenticator.get(options.options, **answer))


@pytest.fixture
def rp() -> Ceremonies:
    return Ceremonies()


@pytest.fixture
def device() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN)


@pytest.fixture
def enrolled(rp: Ceremonies, device: SoftAuthenticator) -> SoftAuthenticator:
    """alice's authenticator, with one passkey registered."""
    rp.register("alice", device)
    return device


@contextmanager
def refused(reason: Refusal, code: ErrorCode = ErrorCode.STEP_UP_REQUIRED) -> Iterator[pytest.ExceptionInfo]:
    """pytest.raises for a PasskeyRefused with this reason and code."""
    with pytest.raises(PasskeyRefused) as error:
        yield error
    assert error.value.reason is reason, error.value.reason
    assert error.value.code is code


# ------------------------------------------------------------------ settings
def test_settings_come_from_the_environment_with_their_defaults():
    # Given the passkey variables of a stage
    environ = {"PASSKEY_RP_ID": "localhost", "PASSKEY_ORIGINS": "http://localhost:3000, http://localhost:3111"}
    # When the settings are read
    config = PasskeyConfig.from_environ(environ)
    # Then the RP, its origins and the defaults are there
    assert config == PasskeyConfig(rp_id="localhost", rp_name="KeyGate",
                                   origins=("http://localhost:3000", "http://localhost:3111"),
                                   step_up_ttl_seconds=120, enrolment_max_session_age_seconds=300)
    # And every bound can be set
    config = PasskeyConfig.from_environ({**environ, "PASSKEY_RP_NAME": "GaiaEx", "STEP_UP_TTL_SECONDS": "60",
                                         "PASSKEY_ENROLMENT_MAX_SESSION_AGE_SECONDS": "600"})
    assert (config.rp_name, config.step_up_ttl_seconds, config.enrolment_max_session_age_seconds) == \
        ("GaiaEx", 60, 600)


def test_wrong_settings_are_named_in_one_message():
    # Given an RP ID that is an address, an origin on another host, one over http, one with a path, a bad TTL
    environ = {"PASSKEY_RP_ID": "Example.COM", "PASSKEY_ORIGINS": "https://evil.example,http://example.com",
               "STEP_UP_TTL_SECONDS": "5"}
    # When the settings are read, then every problem is named at once
    with pytest.raises(ConfigError) as error:
        PasskeyConfig.from_environ(environ)
    assert "PASSKEY_RP_ID" in str(error.value)
    assert "PASSKEY_ORIGINS" in str(error.value)
    assert "STEP_UP_TTL_SECONDS" in str(error.value)
    # And an origin must be the bare origin a browser sends, on the RP ID or below it
    for origin in ("https://app.example.com/", "https://app.example.com/login", "http://app.example.com",
                   "https://example.com.evil.test", "https://APP.example.com"):
        with pytest.raises(ConfigError):
            PasskeyConfig.from_environ({"PASSKEY_RP_ID": "example.com", "PASSKEY_ORIGINS": origin})
    assert PasskeyConfig.from_environ({"PASSKEY_RP_ID": "example.com",
                                       "PASSKEY_ORIGINS": "https://example.com,https://app.example.com:8443"})
    with pytest.raises(ConfigError, match="PASSKEY_RP_ID is required"):
        PasskeyConfig.from_environ({"PASSKEY_ORIGINS": ORIGIN})


# ------------------------------------------------------------- registration
def test_registration_options_ask_for_a_verified_discoverable_es256_or_eddsa_passkey(rp: Ceremonies):
    # When alice asks for registration options
    issued = rp.passkeys.registration_options("alice")
    options = json.loads(issued.options_json)
    # Then they are the WebAuthn Level 3 JSON with KeyGate's requirements
    assert options["rp"] == {"name": "GaiaEx", "id": RP_ID}
    assert [param["alg"] for param in options["pubKeyCredParams"]] == [ES256, EDDSA]
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    assert options["timeout"] == CONFIG.step_up_ttl_seconds * 1000
    assert options["user"]["name"] == "alice"
    # And the challenge is random, stored for alice's registration, and expires after the TTL
    assert len(from_b64url(options["challenge"])) == 64
    assert options["challenge"] != rp.passkeys.registration_options("alice").options["challenge"]
    stored = rp.store.challenges[options["challenge"]]
    assert (stored.user_id, stored.purpose, stored.used_at) == ("alice", Purpose.REGISTRATION, None)
    assert stored.expires_at == rp.clock() + timedelta(seconds=CONFIG.step_up_ttl_seconds)


@pytest.mark.parametrize("algorithm", [ES256, EDDSA], ids=["ES256", "EdDSA"])
def test_a_passkey_registers_and_confirms_a_step_up_with_either_algorithm(rp: Ceremonies, algorithm: int):
    # Given an authenticator that creates a credential with the algorithm
    device = SoftAuthenticator(origin=ORIGIN)
    # When alice registers it
    passkey = rp.register("alice", device, label="  laptop  ", algorithm=algorithm)
    # Then the passkey is stored with what the attestation said
    assert rp.store.get_passkey("alice", passkey.credential_id) == passkey
    assert passkey.credential_id in device.credentials
    assert (passkey.user_id, passkey.label, passkey.sign_count, passkey.created_at) == \
        ("alice", "laptop", 0, rp.clock())
    assert passkey.transports == ("internal", "hybrid")
    assert cbor2.loads(passkey.public_key)[3] == algorithm
    assert passkey.last_used_at is None
    # And it confirms a step-up
    rp.clock.advance(seconds=30)
    approval = rp.step_up(device)
    assert (approval.user_id, approval.action, approval.target, approval.change) == \
        ("alice", "api_keys:update", "kgk_a", CHANGE)
    assert approval.passkey.sign_count == 1
    assert rp.store.get_passkey("alice", passkey.credential_id).last_used_at == rp.clock()


def test_registration_records_the_backup_state(rp: Ceremonies, device: SoftAuthenticator):
    # When a synced passkey (backup eligible and backed up) registers
    passkey = rp.register("alice", device, backup_eligible=True, backed_up=True, counter="zero")
    # Then the passkey says so
    assert (passkey.backup_eligible, passkey.backed_up) == (True, True)


def test_registration_excludes_the_users_existing_passkeys(rp: Ceremonies, device: SoftAuthenticator):
    # Given alice has registered a passkey on her authenticator
    first = rp.register("alice", device)
    # When she asks for registration options again
    options = rp.passkeys.registration_options("alice").options
    # Then her passkey is excluded, with its transports, and her user handle is the same
    assert options["excludeCredentials"] == [{"id": first.credential_id, "type": "public-key",
                                              "transports": ["internal", "hybrid"]}]
    assert options["user"]["id"] == first.user_handle
    # And the authenticator that holds it refuses to create another one (the browser's InvalidStateError)
    with pytest.raises(CredentialExcluded):
        device.create(options)
    # And another authenticator registers a second passkey
    second = rp.register("alice", SoftAuthenticator(origin=ORIGIN))
    assert {passkey.credential_id for passkey in rp.passkeys.list_passkeys("alice")} == \
        {first.credential_id, second.credential_id}
    # And bob's options do not list alice's passkeys
    assert rp.passkeys.registration_options("bob").options["excludeCredentials"] == []


def test_a_passkey_registered_twice_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    # Given alice's passkey
    first = rp.register("alice", device)
    # When an authenticator that ignores the exclusion sends the same credential id again
    options = rp.passkeys.registration_options("alice")
    answer = device.create(options.options, ignore_exclusions=True, credential_id=from_b64url(first.credential_id))
    # Then it is refused
    with refused(Refusal.ALREADY_REGISTERED, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", answer, label="again")


def test_registration_without_user_verification_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    # When the authenticator creates a credential without verifying the user
    # Then the registration is refused, and nothing is stored
    with refused(Refusal.USER_NOT_VERIFIED, ErrorCode.INVALID_REQUEST) as error:
        rp.register("alice", device, user_verified=False)
    assert "verif" in error.value.message
    assert rp.store.passkeys == {}


def test_registration_from_another_origin_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    with refused(Refusal.WRONG_ORIGIN, ErrorCode.INVALID_REQUEST):
        rp.register("alice", device, origin="https://app.example.com.evil.test")


def test_registration_for_another_rp_id_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    with refused(Refusal.WRONG_RP_ID, ErrorCode.INVALID_REQUEST) as error:
        rp.register("alice", device, rp_id="evil.test")
    assert RP_ID in error.value.message


def test_a_registration_challenge_is_used_once(rp: Ceremonies, device: SoftAuthenticator):
    # Given a registration that succeeded
    options = rp.passkeys.registration_options("alice")
    rp.passkeys.register("alice", device.create(options.options), label="phone")
    # When another credential answers the same challenge
    replay = SoftAuthenticator(origin=ORIGIN).create(options.options)
    # Then it is refused
    with refused(Refusal.CHALLENGE_REUSED, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", replay, label="again")


def test_an_expired_registration_challenge_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    options = rp.passkeys.registration_options("alice")
    rp.clock.advance(seconds=CONFIG.step_up_ttl_seconds)
    with refused(Refusal.CHALLENGE_EXPIRED, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", device.create(options.options), label="phone")


def test_a_registration_challenge_of_another_user_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    # Given options issued to alice
    options = rp.passkeys.registration_options("alice")
    # When bob answers them
    with refused(Refusal.CHALLENGE_OF_ANOTHER_USER, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("bob", device.create(options.options), label="phone")
    # Then alice's challenge was not spent
    assert rp.passkeys.register("alice", SoftAuthenticator(origin=ORIGIN).create(options.options), label="phone")


def test_a_step_up_challenge_does_not_register_a_passkey(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given a step-up challenge of alice's
    options = rp.step_up_options("alice").options
    # When a new credential answers it as a registration
    answer = SoftAuthenticator(origin=ORIGIN).create(rp.passkeys.registration_options("alice").options,
                                                     challenge=options["challenge"])
    with refused(Refusal.CHALLENGE_FOR_ANOTHER_CEREMONY, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", answer, label="phone")


def test_an_unknown_registration_challenge_is_refused(rp: Ceremonies, device: SoftAuthenticator):
    options = rp.passkeys.registration_options("alice").options
    answer = device.create(options, challenge=b64url(b"\x01" * 64))
    with refused(Refusal.CHALLENGE_UNKNOWN, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", answer, label="phone")


@pytest.mark.parametrize("body", [
    "not json", [], {}, {"id": "x", "rawId": "x", "type": "public-key", "response": {}},
    {"id": "x", "rawId": "x", "type": "public-key",
     "response": {"clientDataJSON": "!!!", "attestationObject": "AA"}},
], ids=["text", "list", "empty", "no-client-data", "bad-base64"])
def test_a_malformed_registration_body_is_an_invalid_request(rp: Ceremonies, body):
    with refused(Refusal.MALFORMED_CREDENTIAL, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", body, label="phone")


@pytest.mark.parametrize("label", ["", "   ", "x" * 51, "tab\there", "zero\u200bwidth"])
def test_a_bad_label_is_an_invalid_request(rp: Ceremonies, device: SoftAuthenticator, label: str):
    options = rp.passkeys.registration_options("alice")
    with refused(Refusal.INVALID_LABEL, ErrorCode.INVALID_REQUEST):
        rp.passkeys.register("alice", device.create(options.options), label=label)


# ------------------------------------------------------------------ step-up
def test_step_up_options_allow_only_the_users_passkeys_and_require_verification(rp: Ceremonies,
                                                                                enrolled: SoftAuthenticator):
    # Given alice has two passkeys and bob one
    second = rp.register("alice", SoftAuthenticator(origin=ORIGIN))
    rp.register("bob", SoftAuthenticator(origin=ORIGIN))
    # When alice asks to confirm a change
    issued = rp.step_up_options("alice", action="api_keys:revoke", target="kgk_b", change=CHANGE)
    options = json.loads(issued.options_json)
    # Then only her passkeys are allowed, user verification is required, and the RP ID is KeyGate's
    assert {entry["id"] for entry in options["allowCredentials"]} == {*enrolled.credentials, second.credential_id}
    assert options["userVerification"] == "required"
    assert options["rpId"] == RP_ID
    # And the challenge is stored with the user, the action, the target and the change
    stored = rp.store.challenges[options["challenge"]]
    assert (stored.user_id, stored.purpose, stored.action, stored.target, stored.change) == \
        ("alice", Purpose.STEP_UP, "api_keys:revoke", "kgk_b", CHANGE)


def test_step_up_options_without_a_passkey_are_refused(rp: Ceremonies):
    with refused(Refusal.NO_PASSKEY):
        rp.step_up_options("alice")


def test_step_up_options_bound_an_action_without_target(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given an action without a target (create)
    options = rp.step_up_options("alice", action="api_keys:create", target=None)
    # When it is confirmed, then the approval has no target
    approval = rp.passkeys.verify_step_up("alice", enrolled.get(options.options))
    assert (approval.action, approval.target) == ("api_keys:create", None)


@pytest.mark.parametrize("bound", [{"action": ""}, {"action": "a" * 65}, {"change": ""}, {"target": ""},
                                   {"target": "x" * 1025}, {"change": "line\nbreak"}])
def test_step_up_options_refuse_unbounded_values(rp: Ceremonies, enrolled: SoftAuthenticator, bound):
    with refused(Refusal.INVALID_STEP_UP_REQUEST, ErrorCode.INVALID_REQUEST):
        rp.step_up_options("alice", **bound)


def test_a_step_up_without_user_verification_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    # When the authenticator signs without verifying the user (presence only)
    with refused(Refusal.USER_NOT_VERIFIED) as error:
        rp.step_up(enrolled, user_verified=False)
    # Then the message says so
    assert "did not verify you" in error.value.message


def test_a_step_up_without_user_presence_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    with refused(Refusal.USER_NOT_PRESENT):
        rp.step_up(enrolled, user_present=False)


def test_a_step_up_for_another_rp_id_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    with refused(Refusal.WRONG_RP_ID) as error:
        rp.step_up(enrolled, rp_id="example.com")
    assert f"than {RP_ID}" in error.value.message


def test_a_step_up_from_another_origin_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    # When a phishing page relays the challenge and the assertion comes back from its origin
    with refused(Refusal.WRONG_ORIGIN) as error:
        rp.step_up(enrolled, origin="https://app-example.com")
    # Then it is refused without echoing the origin
    assert "app-example" not in error.value.message


def test_a_step_up_inside_a_cross_origin_frame_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    with refused(Refusal.WRONG_ORIGIN):
        rp.step_up(enrolled, cross_origin=True)


def test_every_configured_origin_is_accepted(rp: Ceremonies, enrolled: SoftAuthenticator):
    assert rp.step_up(enrolled, origin="https://www.app.example.com").user_id == "alice"


def test_a_step_up_challenge_is_used_once(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given a confirmed step-up
    options = rp.step_up_options("alice")
    assertion = enrolled.get(options.options)
    rp.passkeys.verify_step_up("alice", assertion)
    # When the same assertion, or a fresh one over the same challenge, is sent again
    # Then both are refused
    with refused(Refusal.CHALLENGE_REUSED):
        rp.passkeys.verify_step_up("alice", assertion)
    with refused(Refusal.CHALLENGE_REUSED):
        rp.passkeys.verify_step_up("alice", enrolled.get(options.options))


def test_an_expired_step_up_challenge_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given options that are one second from expiry, and options that just expired
    options = rp.step_up_options("alice")
    rp.clock.advance(seconds=CONFIG.step_up_ttl_seconds - 1)
    assert rp.passkeys.verify_step_up("alice", enrolled.get(options.options))
    options = rp.step_up_options("alice")
    rp.clock.advance(seconds=CONFIG.step_up_ttl_seconds)
    # When the user confirms too late, then it is refused (the store still holds the challenge)
    assert options.challenge.value in rp.store.challenges
    with refused(Refusal.CHALLENGE_EXPIRED):
        rp.passkeys.verify_step_up("alice", enrolled.get(options.options))


def test_a_step_up_challenge_of_another_user_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given bob has a passkey, and alice asked for step-up options
    bobs = SoftAuthenticator(origin=ORIGIN)
    rp.register("bob", bobs)
    options = rp.step_up_options("alice")
    # When bob answers alice's challenge with his own passkey
    with refused(Refusal.CHALLENGE_OF_ANOTHER_USER):
        rp.passkeys.verify_step_up("bob", bobs.get(options.options, credential_id=next(iter(bobs.credentials))))
    # Then alice's challenge is still hers to use
    assert rp.passkeys.verify_step_up("alice", enrolled.get(options.options)).user_id == "alice"


def test_a_passkey_of_another_user_is_an_unknown_credential(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given bob's passkey, and alice's step-up options
    bobs = SoftAuthenticator(origin=ORIGIN)
    rp.register("bob", bobs)
    options = rp.step_up_options("alice")
    # When alice's session sends an assertion of bob's passkey over her challenge
    with refused(Refusal.UNKNOWN_CREDENTIAL):
        rp.passkeys.verify_step_up("alice", bobs.get(options.options, credential_id=next(iter(bobs.credentials))))


def test_a_removed_passkey_no_longer_confirms(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given alice removed her passkey after asking for options (she has another one)
    rp.register("alice", SoftAuthenticator(origin=ORIGIN))
    options = rp.step_up_options("alice")
    credential_id = next(iter(enrolled.credentials))
    assert rp.passkeys.remove_passkey("alice", credential_id).credential_id == credential_id
    # When it answers, then it is unknown
    with refused(Refusal.UNKNOWN_CREDENTIAL):
        rp.passkeys.verify_step_up("alice", enrolled.get(options.options))


def test_removing_an_unknown_or_another_users_passkey_is_not_found(rp: Ceremonies, enrolled: SoftAuthenticator):
    credential_id = next(iter(enrolled.credentials))
    for user, passkey_id in (("bob", credential_id), ("alice", "AAAA"), ("alice", "A" * 5000)):
        with pytest.raises(PasskeyNotFound) as error:
            rp.passkeys.remove_passkey(user, passkey_id)
        assert error.value.code is ErrorCode.KEY_NOT_FOUND
    assert rp.store.get_passkey("alice", credential_id)


def test_a_registration_challenge_does_not_confirm_a_step_up(rp: Ceremonies, enrolled: SoftAuthenticator):
    registration = rp.passkeys.registration_options("alice").options
    options = rp.step_up_options("alice").options
    with refused(Refusal.CHALLENGE_FOR_ANOTHER_CEREMONY):
        rp.passkeys.verify_step_up("alice", enrolled.get(options, challenge=registration["challenge"]))


def test_an_unknown_step_up_challenge_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    options = rp.step_up_options("alice").options
    for challenge in (b64url(b"\x02" * 64), b64url(b"short"), b64url(b"\x03" * 4000)):
        with refused(Refusal.CHALLENGE_UNKNOWN):
            rp.passkeys.verify_step_up("alice", enrolled.get(options, challenge=challenge))


def test_a_registration_response_does_not_confirm_a_step_up(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given a step-up response whose clientDataJSON says webauthn.create
    options = rp.step_up_options("alice").options
    assertion = enrolled.get(options)
    client_data = json.loads(from_b64url(assertion["response"]["clientDataJSON"]))
    assertion["response"]["clientDataJSON"] = b64url(json.dumps({**client_data, "type": "webauthn.create"}).encode())
    with refused(Refusal.WRONG_CEREMONY):
        rp.passkeys.verify_step_up("alice", assertion)


@pytest.mark.parametrize("body", [
    "{", None, {"id": "x"}, {"id": "x", "rawId": "x", "type": "public-key",
                            "response": {"clientDataJSON": "e30", "authenticatorData": "", "signature": ""}},
    {"id": "x", "rawId": "x", "type": "password", "response": {}},
], ids=["truncated-json", "null", "no-response", "client-data-without-fields", "wrong-type"])
def test_a_malformed_step_up_body_is_an_invalid_request(rp: Ceremonies, body):
    with refused(Refusal.MALFORMED_CREDENTIAL, ErrorCode.INVALID_REQUEST):
        rp.passkeys.verify_step_up("alice", body)


def test_an_assertion_with_a_wrong_signature_is_refused(rp: Ceremonies, enrolled: SoftAuthenticator):
    with refused(Refusal.INVALID_SIGNATURE):
        rp.step_up(enrolled, forged=True)


def test_a_tampered_client_data_breaks_the_signature(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given a genuine assertion whose clientDataJSON is re-serialised with a field added after signing
    options = rp.step_up_options("alice").options
    assertion = enrolled.get(options)
    client_data = json.loads(from_b64url(assertion["response"]["clientDataJSON"]))
    assertion["response"]["clientDataJSON"] = b64url(json.dumps({**client_data, "extra": 1}).encode())
    with refused(Refusal.INVALID_SIGNATURE):
        rp.passkeys.verify_step_up("alice", assertion)


# ---------------------------------------------------------- signature counter
def test_a_counter_that_goes_backwards_is_a_suspected_clone(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given alice's passkey has signed with counter 5
    credential_id = next(iter(enrolled.credentials))
    assert rp.step_up(enrolled, sign_count=5).passkey.sign_count == 5
    # When a correctly signed assertion comes with counter 3
    with pytest.raises(SuspectedClonedAuthenticator) as error:
        rp.step_up(enrolled, sign_count=3)
    # Then it is refused as a suspected clone, with what the caller audits, and the stored counter stays
    clone = error.value
    assert (clone.reason, clone.code) == (Refusal.COUNTER_REGRESSION, ErrorCode.STEP_UP_REQUIRED)
    assert (clone.user_id, clone.credential_id, clone.stored_sign_count, clone.presented_sign_count) == \
        ("alice", credential_id, 5, 3)
    assert "cloned" in clone.message
    assert rp.store.get_passkey("alice", credential_id).sign_count == 5


@pytest.mark.parametrize("presented", [5, 0], ids=["same", "back-to-zero"])
def test_a_counter_that_does_not_go_up_is_a_suspected_clone(rp: Ceremonies, enrolled: SoftAuthenticator,
                                                            presented: int):
    # Given a counter at 5: the same value, or 0 after it was counting, does not go up either
    rp.step_up(enrolled, sign_count=5)
    with pytest.raises(SuspectedClonedAuthenticator):
        rp.step_up(enrolled, sign_count=presented)


def test_a_forged_assertion_with_a_lower_counter_does_not_raise_the_clone_alarm(rp: Ceremonies,
                                                                                 enrolled: SoftAuthenticator):
    # Given alice's counter is at 5
    rp.step_up(enrolled, sign_count=5)
    # When someone without her key sends an assertion with counter 2
    with pytest.raises(PasskeyRefused) as error:
        rp.step_up(enrolled, sign_count=2, forged=True)
    # Then it is a plain signature refusal, not a suspected clone
    assert type(error.value) is PasskeyRefused
    assert error.value.reason is Refusal.INVALID_SIGNATURE
    assert rp.store.get_passkey("alice", next(iter(enrolled.credentials))).sign_count == 5


def test_counters_that_stay_zero_are_accepted(rp: Ceremonies):
    # Given a synced passkey, whose counter is always 0
    synced = SoftAuthenticator(origin=ORIGIN)
    rp.register("alice", synced, counter="zero", backup_eligible=True, backed_up=True)
    # When it confirms three step-ups, then each is accepted and the counter stays 0
    for _ in range(3):
        rp.clock.advance(seconds=1)
        approval = rp.step_up(synced)
        assert approval.passkey.sign_count == 0
        assert approval.passkey.last_used_at == rp.clock()


def test_a_counter_that_starts_counting_later_is_accepted(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given a passkey registered with counter 0 and used with 0
    rp.step_up(enrolled, sign_count=0)
    # When it starts counting, then that is accepted and stored
    assert rp.step_up(enrolled, sign_count=7).passkey.sign_count == 7
    assert rp.step_up(enrolled).passkey.sign_count == 8


def test_a_failed_ceremony_spends_its_challenge(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given an assertion refused for lack of user verification
    options = rp.step_up_options("alice")
    with refused(Refusal.USER_NOT_VERIFIED):
        rp.passkeys.verify_step_up("alice", enrolled.get(options.options, user_verified=False))
    # When the user tries again over the same challenge, then she must ask for new options
    with refused(Refusal.CHALLENGE_REUSED):
        rp.passkeys.verify_step_up("alice", enrolled.get(options.options))


# --------------------------------------------------------------- authenticator
def test_the_software_authenticator_keeps_its_state_across_a_restart(rp: Ceremonies, enrolled: SoftAuthenticator):
    # Given alice's authenticator after two step-ups
    rp.register("alice", enrolled, algorithm=EDDSA, ignore_exclusions=True)
    rp.step_up(enrolled, credential_id=next(iter(enrolled.credentials)))
    # When its state is saved and loaded again (as a dev command keeps it in a state directory)
    restored = SoftAuthenticator.from_json(enrolled.to_json())
    # Then it holds the same credentials and counters, and both passkeys still confirm
    assert restored.to_json() == enrolled.to_json()
    for credential_id in restored.credentials:
        assert rp.step_up(restored, credential_id=credential_id).passkey.credential_id == credential_id


def test_the_software_authenticator_answers_in_the_webauthn_json_forms(rp: Ceremonies, device: SoftAuthenticator):
    # When it answers registration and step-up options
    created = device.create(rp.passkeys.registration_options("alice").options)
    attestation = cbor2.loads(from_b64url(created["response"]["attestationObject"]))
    # Then the registration response is a RegistrationResponseJSON with a "none" attestation
    assert set(created) == {"id", "rawId", "type", "authenticatorAttachment", "clientExtensionResults", "response"}
    assert attestation["fmt"] == "none" and attestation["attStmt"] == {}
    assert attestation["authData"] == from_b64url(created["response"]["authenticatorData"])
    assert attestation["authData"][32] == 0x01 | 0x04 | 0x40  # UP, UV, AT
    client_data = json.loads(from_b64url(created["response"]["clientDataJSON"]))
    assert list(client_data) == ["type", "challenge", "origin", "crossOrigin"]
    assert client_data["crossOrigin"] is False
    rp.passkeys.register("alice", created, label="phone")
    # And the assertion is an AuthenticationResponseJSON
    asserted = device.get(rp.step_up_options("alice").options)
    assert set(asserted["response"]) == {"clientDataJSON", "authenticatorData", "signature", "userHandle"}
    assert int.from_bytes(from_b64url(asserted["response"]["authenticatorData"])[33:37], "big") == 1


# ---------------------------------------------------------------- lean imports
def test_the_signature_authorizer_never_imports_webauthn():
    # Given a fresh interpreter, when the signature authorizer's module is imported
    code = ("import sys, keygate.authorizer; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'webauthn', 'cbor2', 'pyasn1'} "
            "or m in {'keygate.passkeys', 'keygate.stepup_issuer', 'keygate.storage.passkeys', "
            "'keygate.storage.kms'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603  # argv of this project's own interpreter, no shell
    # Then neither py_webauthn nor any passkey module is loaded
    assert result.stdout.strip() == "[]"


def test_the_passkey_domain_needs_no_aws_sdk():
    # Given a fresh interpreter, when keygate.passkeys is imported, then boto3 stays unloaded
    code = ("import sys, keygate.passkeys; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603  # argv of this project's own interpreter, no shell
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("function_id", ["CreateApiKeyFunction", "UpdateApiKeyFunction", "RevokeApiKeyFunction",
                                         "RevokeAllApiKeysFunction", "ListApiKeysFunction",
                                         "SessionAuthorizerFunction"])
def test_the_key_functions_never_import_webauthn(function_id: str):
    # Given a fresh interpreter, when a key function's handler is loaded as Lambda loads it (it verifies
    # KeyGate's step-up tokens, which needs no WebAuthn: py_webauthn ships with the passkey functions only)
    code = ("import sys; from keygate_dev import template; "
            f"template.load_handler({function_id!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'webauthn', 'cbor2'} "
            "or m in {'keygate.passkeys', 'keygate.storage.passkeys', 'keygate.stepup_service'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603  # argv of this project's own interpreter, no shell
    # Then no passkey module is loaded
    assert result.stdout.strip() == "[]"
