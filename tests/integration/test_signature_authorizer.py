"""SignatureAuthorizerFunction through its real handler, against moto, with keys made by the create path.

Events are shaped like API Gateway's REQUEST authorizer events; the outcome
is read the way API Gateway reads it (Allow -> 200, Deny -> ACCESS_DENIED,
which the template answers 401 with the Deny's code and message, any error ->
503 AUTHORIZER_CONFIGURATION_ERROR). Every refusal is a Deny: none raises.
The handler's authorizer gets injected clocks, so time moves without sleeping
(the `gate` fixture, tests/integration/conftest.py; tests/support/bots.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pytest
from aws_lambda_powertools.logging import logger as powertools_logger

import keygate_client
import kg1
from keygate import keys
from keygate.config import AuthorizerConfig
from keygate.observability import logger, metrics
from keygate.records import ApiKeyRecord, KeyStatus
from keygate.storage import layout
from keygate_dev import template
from kg1 import ed25519
from tests.support.bots import BOT_IP, authorizer_failure
from tests.support.faults import AWS_FAULTS, Fault, Mode
from tests.support.stack import REGION, SECRETS_KEY_ID, STAGE, TABLE_NAME, nonce_items, table_items

SELF_PATH = "/v1/trade/api-keys/self"
# How far to move the gate's clock for a key created with expires_days=1 to have expired: the gate's clock
# starts when the fixture is built, the key's expiry counts from its create (on the management side's own
# clock), which a slow create can start more than a second later.
EXPIRED_AFTER_A_DAY = 24 * 3600 + 60
# What API Gateway answers when the authorizer fails (raises anything), as deployed.
AUTHORIZER_FAILURE = authorizer_failure()


def refused(outcome, code: str) -> bool:
    """A refusal as the bot receives it: a Deny (401 through ACCESS_DENIED) whose context carries the code."""
    assert outcome.denied and outcome.status == 401 and outcome.error is None, outcome
    assert outcome.policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert outcome.context["error_message"], outcome
    return outcome.context["error_code"] == code


def logged_codes(captured_logs) -> list[str]:
    return [json.loads(line).get("error_code") for line in captured_logs.lines()
            if line.startswith("{") and json.loads(line).get("message") == "signature checked"]


# -------------------------------------------------------------------- allow
def test_a_signed_request_is_allowed_for_its_own_method_arn_only(gate):
    # Given a read key created through the API
    key = gate.create_key(label="bot")
    # When the bot's signed GET /v1/trade/api-keys/self reaches the authorizer
    event = gate.event("GET", "/v1/trade/api-keys/self", "", gate.headers(key, "GET", "/v1/trade/api-keys/self"))
    outcome = gate.invoke(event)
    # Then API Gateway gets an Allow for exactly this method ARN, with the user as principal and a flat context
    assert outcome.status == 200
    assert outcome.policy["principalId"] == "alice"
    assert outcome.policy["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]
    assert event["methodArn"].endswith(f"/{STAGE}/GET/v1/trade/api-keys/self")
    assert outcome.context == {"user_id": "alice", "key_id": key[0], "permissions": "read"}
    assert key[1] not in json.dumps(outcome.policy)


def test_the_nonce_and_last_use_are_recorded_after_an_allow(gate):
    key = gate.create_key()
    headers = gate.headers(key, "GET", "/v1/trade/api-keys/self")
    assert gate.invoke(gate.event("GET", "/v1/trade/api-keys/self", "", headers)).status == 200
    # The nonce in the nonces table of its own (one write per bot request, none in the keys table)
    [nonce] = nonce_items()
    assert nonce["pk"] == f"{key[0]}#{headers['X-KG-NONCE']}"
    assert nonce["expires_at_ms"] == int(headers["X-KG-TIMESTAMP"]) + kg1.DEFAULT_RECV_WINDOW_MS + 1
    assert nonce["expires_ttl"] > time.time()
    assert not [item for item in table_items() if "NONCE" in item["pk"]]
    # The last use under a partition of its own (USAGE#<user>), which IAM lets the authorizer update
    [usage] = [item for item in table_items() if item["pk"].startswith("USAGE#")]
    assert (usage["pk"], usage["sk"]) == ("USAGE#alice", key[0]) and usage["last_used_at"]
    listed = gate.client.list().json()["keys"][0]
    assert listed["last_used_at"] is not None


# ------------------------------------------------------------ 401 refusals
def test_replay_is_refused_with_a_401(gate, captured_logs):
    key = gate.create_key()
    headers = gate.headers(key, "GET", "/v1/trade/api-keys/self")
    event = gate.event("GET", "/v1/trade/api-keys/self", "", headers)
    assert gate.invoke(event).status == 200
    gate.clocks.advance(1.0)
    replay = gate.invoke(gate.event("GET", "/v1/trade/api-keys/self", "", headers))
    assert refused(replay, "NONCE_REUSED")
    assert logged_codes(captured_logs)[-1] == "NONCE_REUSED"


def test_an_expired_nonce_record_that_ttl_has_not_deleted_does_not_block(gate):
    # Given a request whose nonce was recorded, and a moment past its expiry
    key = gate.create_key()
    nonce = "lingering-nonce-0123456789"
    first = keygate_client.sign(*key, "GET", "/v1/trade/api-keys/self", timestamp_ms=gate.clocks.wall_ms, nonce=nonce)
    assert gate.invoke(gate.event("GET", "/v1/trade/api-keys/self", "", first)).status == 200
    gate.clocks.advance(5.002)
    # And DynamoDB's TTL has not deleted the record yet (moto never does: this is that lateness)
    assert any(item["pk"] == f"{key[0]}#{nonce}" for item in nonce_items())
    # When a new request uses the same nonce
    second = keygate_client.sign(*key, "GET", "/v1/trade/api-keys/self", timestamp_ms=gate.clocks.wall_ms,
                                 nonce=nonce)
    # Then the stale record does not block it
    assert gate.invoke(gate.event("GET", "/v1/trade/api-keys/self", "", second)).status == 200


def test_a_revoked_key_is_refused_within_the_record_ttl(gate, captured_logs):
    # Given a key the authorizer has just let in (record and secret cached)
    key = gate.create_key()
    assert gate.send(key).status == 200
    # When the user revokes it (the secret is deleted at once)
    assert gate.client.revoke(key[0]).status == 200
    # Then the cached record may still pass it for less than RecordCacheTtlSeconds (5 s) ...
    ttl = AuthorizerConfig.from_environ().record_cache_ttl_seconds
    assert ttl == 5
    gate.clocks.advance(ttl - 0.001)
    assert gate.send(key).status == 200
    # ... and from then on it is refused
    gate.clocks.advance(0.001)
    assert refused(gate.send(key), "KEY_REVOKED")
    assert logged_codes(captured_logs)[-1] == "KEY_REVOKED"


def test_a_key_revoked_before_first_use_is_refused_at_once(gate, captured_logs):
    key = gate.create_key()
    assert gate.client.revoke(key[0]).status == 200
    assert refused(gate.send(key), "KEY_REVOKED")


def test_an_expired_key_is_refused(gate, captured_logs):
    key = gate.create_key(expires_days=1)
    assert gate.send(key).status == 200
    gate.clocks.advance(EXPIRED_AFTER_A_DAY)
    assert refused(gate.send(key), "KEY_EXPIRED")


@pytest.mark.parametrize(("case", "code"), [
    ("wrong secret", "SIGNATURE_MISMATCH"), ("forged key id", "INVALID_KEY_ID"),
    ("late", "TIMESTAMP_OUT_OF_WINDOW"), ("early", "TIMESTAMP_OUT_OF_WINDOW"),
])
def test_refusals_are_401_denies_that_carry_and_log_their_code(gate, captured_logs, case, code):
    key = gate.create_key()
    sent = {
        "wrong secret": lambda: gate.send((key[0], keys.new_secret())),
        "forged key id": lambda: gate.send(("kgk_" + "A" * 28, key[1])),
        "late": lambda: gate.send(key, clock=lambda: gate.clocks.wall_ms - 5001),
        "early": lambda: gate.send(key, clock=lambda: gate.clocks.wall_ms + 1001),
    }[case]()
    assert refused(sent, code)
    assert logged_codes(captured_logs)[-1] == code


def test_an_unknown_but_well_formed_key_id_is_looked_up_and_refused(gate, captured_logs):
    outcome = gate.send((keys.new_key_id("kgk_"), keys.new_secret()))
    assert refused(outcome, "UNKNOWN_KEY")


@pytest.mark.parametrize("name", sorted(kg1.SIGNED_HEADER_NAMES))
@pytest.mark.parametrize("value", [None, "", "x" * 20_000, "ü" * 32], ids=["missing", "empty", "huge", "non-ascii"])
def test_malformed_headers_are_401_without_any_aws_call(gate, aws_calls, name, value):
    # Given a correctly signed request (checks 1-3 need no stored key) with one header spoiled
    key = (keys.new_key_id("kgk_"), keys.new_secret())
    headers = {header.lower(): text for header, text in gate.headers(key, "GET", "/v1/trade/api-keys/self",
                                                                     recv_window_ms=5000).items()}
    if value is None:
        del headers[name]
    else:
        headers[name] = value
    # When it reaches the handler
    with aws_calls.recording() as calls:
        outcome = gate.invoke(gate.event("GET", "/v1/trade/api-keys/self", "", headers))
    # Then it is a 401 Deny naming the header, never an exception, and nothing was looked up
    if name == "x-kg-recv-window" and value is None:
        assert refused(outcome, "UNKNOWN_KEY")
        return  # optional header: the request is well formed and fails later (here: an unknown key)
    assert refused(outcome, "MISSING_HEADER" if value is None else "MALFORMED_HEADER")
    assert name.upper() in outcome.context["error_message"]
    assert calls == []


def test_a_header_sent_twice_is_refused(gate):
    key = gate.create_key()
    headers = gate.headers(key, "GET", "/v1/trade/api-keys/self")
    event = gate.event("GET", "/v1/trade/api-keys/self", "", headers)
    event["multiValueHeaders"]["X-KG-SIGNATURE"] = [headers["X-KG-SIGNATURE"], "0" * 64]
    outcome = gate.invoke(event)
    # Then it is refused, and the message names the header, as the README's table promises
    assert refused(outcome, "MALFORMED_HEADER")
    assert outcome.context["error_message"] == "X-KG-SIGNATURE must be sent exactly once."


@pytest.mark.parametrize("window", ["0", "60001", "five"])
def test_an_invalid_recv_window_is_401(gate, window):
    key = gate.create_key()
    headers = {**gate.headers(key, "GET", "/v1/trade/api-keys/self"), "X-KG-RECV-WINDOW": window}
    assert refused(gate.invoke(gate.event("GET", "/v1/trade/api-keys/self", "", headers)), "MALFORMED_HEADER")


# ------------------------------------------------- refusals of checks 5 and 6
@pytest.mark.parametrize(("whitelist", "source_ip", "allowed"), [
    (["198.51.100.7"], "198.51.100.7", True), (["198.51.100.7"], "198.51.100.8", False),
    (["198.51.100.0/24"], "198.51.100.200", True), (["198.51.100.0/24"], "198.51.99.1", False),
    (["2001:db8::/48"], "2001:db8:0:1::5", True), (["2001:db8::/48"], "2001:db8:1::5", False),
    (["2001:db8::7", "198.51.100.7"], "2001:db8::7", True),
])
def test_ip_whitelist_v4_v6_and_cidr(gate, whitelist, source_ip, allowed):
    key = gate.create_key(ip_whitelist=whitelist)
    outcome = gate.send(key, source_ip=source_ip)
    if allowed:
        assert outcome.status == 200
    else:
        # The message names the address the request came from: what to add to the whitelist
        assert refused(outcome, "IP_NOT_ALLOWED")
        assert f"from {source_ip}:" in outcome.context["error_message"]


def test_a_spoofed_x_forwarded_for_changes_nothing(gate):
    key = gate.create_key(ip_whitelist=["198.51.100.7"])
    spoofed = {"X-Forwarded-For": "198.51.100.7", "X-Real-Ip": "198.51.100.7"}
    assert refused(gate.send(key, source_ip="192.0.2.66", extra_headers=spoofed), "IP_NOT_ALLOWED")


def test_a_read_only_key_is_refused_on_a_post_and_writes_no_nonce(gate, aws_calls):
    # Given a read-only key and a signed POST to a trade route of a downstream API
    key = gate.create_key(permissions=["read"])
    with aws_calls.recording() as calls:
        outcome = gate.send(key, "POST", "/v1/trade/orders", body=b'{"symbol":"BTC-USDT","side":"buy","qty":"1"}')
    # Then the authorizer denies it explicitly, naming the permission; ACCESS_DENIED renders the context
    assert refused(outcome, "PERMISSION_DENIED")
    assert outcome.policy["principalId"] == "alice"
    assert "lacks the trade permission" in outcome.context["error_message"]
    assert "dynamodb.PutItem" not in calls and "dynamodb.UpdateItem" not in calls


@pytest.mark.parametrize("stack_env", [{"AllowedPermissions": "read,trade,withdraw",
                                        "WithdrawalRoutes": "POST /v1/wallet/withdrawals,"
                                                            "POST /v1/accounts/{account_id}/withdrawals"}],
                         indirect=True)
def test_withdrawal_routes_need_the_withdraw_permission(gate):
    # Given the stack parameter naming the withdrawal routes as API Gateway's resource templates (the example
    # API's), a trading key and a withdrawal key
    assert AuthorizerConfig.from_environ().withdrawal_routes == (
        ("POST", "/v1/wallet/withdrawals"), ("POST", "/v1/accounts/{account_id}/withdrawals"))
    trader = gate.create_key(permissions=["read", "trade"])
    withdrawer = gate.create_key(user="bob", permissions=["read", "trade", "withdraw"], ip_whitelist=[BOT_IP])
    # Then only the withdrawal key passes on those routes, the templated one included (issue 13, finding 1a) ...
    for path in ("/v1/wallet/withdrawals", "/v1/accounts/acc-1/withdrawals"):
        assert refused(gate.send(trader, "POST", path), "PERMISSION_DENIED"), path
        assert gate.send(withdrawer, "POST", path).status == 200, path
    # ... and on the example's catch-all, which no SafeProxyResources entry declares safe (fail closed)
    assert refused(gate.send(trader, "GET", "/v1/misc/prices"), "PERMISSION_DENIED")
    assert gate.send(withdrawer, "GET", "/v1/misc/prices").status == 200
    # And elsewhere the usual read/trade rule applies
    assert gate.send(trader, "POST", "/v1/trade/orders").status == 200
    assert gate.send(withdrawer, "GET", "/v1/trade/api-keys/self").status == 200


@pytest.mark.parametrize("stack_env", [{"SafeProxyResources": "/v1/misc/{proxy+}"}], indirect=True)
def test_a_catch_all_declared_safe_needs_only_read_or_trade(gate):
    trader = gate.create_key(permissions=["read", "trade"])
    assert gate.send(trader, "GET", "/v1/misc/prices").status == 200
    assert gate.send(trader, "POST", "/v1/misc/anything").status == 200


def test_the_default_stack_has_no_withdrawal_routes_and_no_safe_catch_all(gate):
    config = AuthorizerConfig.from_environ()
    assert (config.withdrawal_routes, config.safe_proxy_resources) == ((), ())


# ---------------------------------------------------------------- secrets
def test_the_secret_never_appears_in_logs_context_or_policy(gate, captured_logs):
    key = gate.create_key(permissions=["read"], ip_whitelist=[BOT_IP])
    outcomes = [gate.send(key), gate.send(key, "POST", "/v1/trade/orders"), gate.send(key, source_ip="192.0.2.1"),
                gate.send((key[0], key[1][:-1] + "x"))]
    assert [outcome.context.get("error_code") for outcome in outcomes] == [
        None, "PERMISSION_DENIED", "IP_NOT_ALLOWED", "SIGNATURE_MISMATCH"]
    for outcome in outcomes:
        assert key[1] not in json.dumps(outcome.policy) and key[1] not in repr(outcome.error)
    assert captured_logs.lines() and not any(key[1] in line for line in captured_logs.lines())


# ------------------------------------------------------------------ faults
# The authorizer's AWS calls for a key it has not cached, in order (the fault's index counts from 0).
AUTHORIZER_CALLS = {"key pointer": (0, "dynamodb.GetItem"), "key record": (1, "dynamodb.GetItem"),
                    "secret": (2, "secretsmanager.GetSecretValue"), "nonce": (3, "dynamodb.PutItem")}


@pytest.mark.parametrize("call", sorted(AUTHORIZER_CALLS))
@pytest.mark.parametrize("fault", AWS_FAULTS, ids=["unavailable", "internal-error", "throttled", "unreachable"])
def test_an_aws_fault_is_a_503_never_an_allow_nor_a_401(gate, aws_calls, call, fault):
    # Given a key, and one of the authorizer's AWS calls failing after botocore's retries (or never connecting)
    key = gate.create_key()
    index, operation = AUTHORIZER_CALLS[call]
    armed = aws_calls.arm(Fault(Mode.FAIL_BEFORE, index=index, error=fault(operation)))
    # When a correctly signed request arrives
    outcome = gate.send(key)
    # Then the call that failed is the one meant, and the authorizer raised (no Deny, no Allow): no policy
    # at all, so API Gateway answers its AUTHORIZER_CONFIGURATION_ERROR response ...
    assert armed.fired_at == operation
    assert outcome.policy is None and outcome.error is not None
    # ... which the template makes a 503 with Retry-After in the error shape, never a bare 500
    assert outcome.status == 503
    assert int(AUTHORIZER_FAILURE["ResponseParameters"]["Headers"]["Retry-After"].strip("'")) > 0
    assert json.loads(AUTHORIZER_FAILURE["ResponseTemplates"]["application/json"])["error"]["code"] \
        == "SERVICE_UNAVAILABLE"


def test_a_failed_last_use_refresh_never_denies(gate, aws_calls):
    key = gate.create_key()
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="dynamodb.UpdateItem"))
    assert gate.send(key).status == 200


# ------------------------------------------------------ what it writes
# Allowed requests are recorded by the API's access log, refusals by the authorizer (docs/architecture.md,
# "Observability of the signature authorizer").
def _decisions(captured_logs) -> list[tuple[str, bool, str]]:
    """(level, allowed, error_code) of each decision line the Logger wrote."""
    lines = [json.loads(line) for line in captured_logs.lines() if line.startswith("{")]
    return [(line["level"], line["allowed"], line["error_code"]) for line in lines
            if line.get("message") == "signature checked"]


def _published(capsys) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of each metric Powertools printed (CloudWatch's embedded format)."""
    published = []
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: document[name] for names in directive["Dimensions"] for name in names}
            published += [(directive["Namespace"], metric["Name"], dimensions) for metric in directive["Metrics"]]
    return published


@contextmanager
def _log_level(level: str) -> Iterator[None]:
    """KeyGate's Logger at `level` (the captured logs run at DEBUG)."""
    keygate_logging = logging.getLogger(logger.name)
    before = keygate_logging.level
    keygate_logging.setLevel(level)
    try:
        yield
    finally:
        keygate_logging.setLevel(before)


@contextmanager
def _metrics_on(capsys) -> Iterator[None]:
    """Metrics printed as deployed (the test stack switches them off and so keeps what other handlers added),
    from a clean capture."""
    metrics.clear_metrics()
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
        yield


def test_an_allowed_request_is_logged_at_debug_only_and_publishes_no_metric(gate, captured_logs, capsys):
    key = gate.create_key()
    # When a signed request is allowed at the stack's default LogLevel (INFO), then another at DEBUG
    with _metrics_on(capsys), _log_level(template.parameter_defaults()["LogLevel"]):
        assert gate.send(key).status == 200
    with _metrics_on(capsys):
        assert gate.send(key).status == 200
    # Then only the second wrote its decision line, a DEBUG one, and neither printed a metric: the
    # signature-refusals alarm counts requests by the authorizer's invocations
    assert _decisions(captured_logs) == [("DEBUG", True, "OK")]
    assert _published(capsys) == []


def test_a_refusal_is_logged_as_a_warning_with_its_code_and_counted_once(gate, captured_logs, capsys):
    key = gate.create_key()
    # When a request signed with the wrong secret arrives
    with _metrics_on(capsys):
        assert refused(gate.send((key[0], key[1][:-1] + "x")), "SIGNATURE_MISMATCH")
    # Then its decision line is a WARNING one (written at every LogLevel short of ERROR) with the code, and one
    # SignatureRefused401 is published, with the dimension the signature-refusals alarm reads
    assert _decisions(captured_logs) == [("WARNING", False, "SIGNATURE_MISMATCH")]
    assert _published(capsys) == [("KeyGate", "SignatureRefused401", {"service": "keygate"})]


def test_a_metric_the_checks_add_is_published_with_an_allowed_request(gate, aws_calls, capsys):
    key = gate.create_key()
    # When the last-use refresh of an allowed request fails
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="dynamodb.UpdateItem"))
    with _metrics_on(capsys):
        assert gate.send(key).status == 200
    # Then its metric is still published, with that invocation
    assert _published(capsys) == [("KeyGate", "LastUsedRefreshFailed", {"service": "keygate"})]


def test_debug_sampling_is_drawn_again_for_each_warm_request(gate, captured_logs, monkeypatch):
    # Given a warm instance whose Logger samples debug lines (POWERTOOLS_LOGGER_SAMPLE_RATE=0.5) at the stack's
    # default LogLevel, and Powertools' next draws 0.9, 0.1, 0.9
    key = gate.create_key()
    default = template.parameter_defaults()["LogLevel"]
    monkeypatch.setattr(template.module_for("SignatureAuthorizerFunction"), "_cold_start", False)
    monkeypatch.setattr(logger, "sampling_rate", 0.5)
    monkeypatch.setattr(logger, "initial_log_level", logging.getLevelName(default))
    draws = [0.9, 0.1, 0.9]
    monkeypatch.setattr(powertools_logger, "random", SimpleNamespace(random=lambda: draws.pop(0)))
    # When three signed requests are allowed
    with _log_level(default):
        for _ in range(3):
            assert gate.send(key).status == 200
    # Then each request drew once, and only the second, whose draw fell within the rate, wrote its DEBUG decision
    # line: as Powertools' inject_lambda_context samples, per request, not once per warm instance
    assert draws == []
    assert _decisions(captured_logs) == [("DEBUG", True, "OK")]


def test_secrets_manager_unreachable_for_a_cached_secret_changes_nothing(gate, aws_calls):
    key = gate.create_key()
    assert gate.send(key).status == 200
    aws_calls.arm(Fault(Mode.FAIL_BEFORE, operation="secretsmanager.GetSecretValue"))
    gate.clocks.advance(6.0)
    assert gate.send(key).status == 200


def test_the_authorizer_is_the_only_reader_of_the_secret(gate):
    # The secret the authorizer reads is the one the create path wrote (same name, same stage prefix)
    key = gate.create_key()
    secrets = boto3.client("secretsmanager", region_name=REGION)
    stored = secrets.get_secret_value(SecretId=f"keygate/{STAGE}/{key[0]}")["SecretString"]
    assert stored == key[1]
    # Encrypted with the stack's own KMS key, whose policy lets the authorizer alone decrypt it (moto records
    # the key but enforces nothing: tests/unit/test_key_policy.py proves the policy)
    assert secrets.describe_secret(SecretId=f"keygate/{STAGE}/{key[0]}")["KmsKeyId"] == SECRETS_KEY_ID


# ------------------------------------------- every refusal, as the bot receives it
GATEWAY_REFUSALS = {
    # code: (what the bot does wrong, the words of the message that say what to fix)
    "MISSING_HEADER": (lambda gate, key: gate.via_gateway(key, drop="X-KG-NONCE"), ["X-KG-NONCE is required"]),
    "MALFORMED_HEADER": (lambda gate, key: gate.via_gateway(key, change={"X-KG-NONCE": "short"}),
                         ["X-KG-NONCE must be 16 to 64 characters"]),
    "TIMESTAMP_OUT_OF_WINDOW": (lambda gate, key: gate.via_gateway(key, clock=lambda: gate.clocks.wall_ms - 9000),
                                ["9000 ms behind", "server time ", "GET /v1/time"]),
    "INVALID_KEY_ID": (lambda gate, key: gate.via_gateway(("kgk_" + "A" * 28, key[1])), ["exactly as issued"]),
    "UNKNOWN_KEY": (lambda gate, key: gate.via_gateway((keys.new_key_id("kgk_"), key[1])), ["No API key has this id"]),
    "KEY_REVOKED": (lambda gate, key: gate.client.revoke(key[0]) and gate.via_gateway(key), ["revoked"]),
    "KEY_EXPIRED": (lambda gate, key: gate.clocks.advance(EXPIRED_AFTER_A_DAY) or gate.via_gateway(key),
                    ["expired"]),
    "ALGORITHM_MISMATCH": (lambda gate, key: gate.via_gateway(key, change={"X-KG-SIGNATURE": "ab" * 64}),
                           ["HMAC-SHA256 key", "KG1-HMAC-SHA256", "64 hex"]),
    "SIGNATURE_MISMATCH": (lambda gate, key: gate.via_gateway((key[0], keys.new_secret())),
                           ["string to sign", "without the stage"]),
    "IP_NOT_ALLOWED": (lambda gate, key: gate.via_gateway(key, source_ip="192.0.2.77"), ["from 192.0.2.77"]),
    "PERMISSION_DENIED": (lambda gate, key: gate.via_gateway(key, "POST", "/v1/trade/orders", body=b"{}"),
                          ["lacks the trade permission"]),
    "NONCE_REUSED": (lambda gate, key: gate.via_gateway(key, replay=True), ["fresh X-KG-NONCE"]),
}


def test_every_refusal_code_of_the_authorizer_is_covered_here():
    from keygate.authorizer import REFUSAL_CODES
    assert set(GATEWAY_REFUSALS) == {code.value for code in REFUSAL_CODES}


@pytest.mark.parametrize("code", sorted(GATEWAY_REFUSALS))
def test_every_refusal_reaches_the_bot_through_the_gateway_with_its_code_and_what_to_fix(gate, code):
    # Given a read key restricted to the bot's address, made through the API
    key = gate.create_key(permissions=["read"], ip_whitelist=[BOT_IP], expires_days=1)
    attempt, hints = GATEWAY_REFUSALS[code]
    # When the bot sends a request that this check refuses, through API Gateway (the local gateway)
    response = attempt(gate, key)
    # Then it receives 401 with the code and a message that says what to fix, in the uniform error shape
    assert response.status == 401, response.body
    body = response.json()
    assert body["ok"] is False and body["error"]["code"] == code, body
    for hint in hints:
        assert hint in body["error"]["message"], body
    # And nothing derived from the secret is in it
    assert key[1] not in response.body


# ------------------------------------------------------------ Ed25519 keys
def stored_ed25519_key(user: str = "alice", *, public_key_form: str = "pem") -> tuple[str, object]:
    """An active Ed25519 key as the create path stores it (record with its public key, pointer; no secret)."""
    private_key = ed25519.generate_private_key()
    raw = ed25519.public_key_of(private_key)
    record = ApiKeyRecord(key_id=keys.new_key_id("kgk_"), user_id=user, label="ed25519 bot", permissions=["read"],
                          ip_whitelist=[], status=KeyStatus.ACTIVE, created_at=datetime.now(UTC), key_type="ed25519",
                          public_key=ed25519.public_key_pem(raw) if public_key_form == "pem"
                          else ed25519.public_key_base64(raw))
    client = boto3.client("dynamodb", region_name=REGION)
    for item in (layout.record_item(record), layout.pointer_item(record)):
        client.put_item(TableName=TABLE_NAME, Item=item)
    return record.key_id, private_key


@pytest.mark.parametrize("form", ["pem", "base64"])
def test_an_ed25519_bot_is_let_in_through_the_gateway_without_any_secret(gate, aws_calls, form):
    # Given an Ed25519 key whose record holds its public key, and nothing in Secrets Manager
    key_id, private_key = stored_ed25519_key(public_key_form=form)
    bot = gate.bot((key_id, None))
    bot.private_key = private_key
    # When the bot signs GET /v1/trade/api-keys/self with its private key (KG1-ED25519) and sends it
    with aws_calls.recording() as calls:
        response = gate.client.gateway.request("GET", SELF_PATH, headers=bot.headers("GET", SELF_PATH),
                                               source_ip=BOT_IP)
    # Then it is let in, and no secret was read
    assert response.status == 200, response.body
    assert response.json()["api_key"] == key_id
    assert "secretsmanager.GetSecretValue" not in calls
    # And an HMAC-length signature for it is refused, naming the algorithm the key uses
    hmac_sized = {**bot.headers("GET", SELF_PATH), "X-KG-SIGNATURE": "ab" * 32}
    refused_answer = gate.client.gateway.request("GET", SELF_PATH, headers=hmac_sized, source_ip=BOT_IP)
    assert refused_answer.status == 401
    assert refused_answer.json()["error"]["code"] == "ALGORITHM_MISMATCH"
    assert "KG1-ED25519" in refused_answer.json()["error"]["message"]


@pytest.mark.parametrize("stack_env", [{"AllowedPermissions": "read,trade,withdraw"}], indirect=True)
# (each refused or crashed while the gateway read the Allow's ARN as a regular expression)
@pytest.mark.parametrize("segment", ["a+b", "a$b", "a^b", "aa{2}", "a(b", "a)b", "a[b", "a\\b"])
def test_a_path_with_regular_expression_characters_gets_through_the_gateway(gate, segment):
    # Given a key that may call the example API's catch-all
    withdrawer = gate.create_key(permissions=["read", "trade", "withdraw"], ip_whitelist=[BOT_IP])
    # When it signs a request whose path holds characters a regular expression would read as syntax
    response = gate.via_gateway(withdrawer, "GET", f"/v1/misc/{segment}")
    # Then the gateway matches the authorizer's Allow as API Gateway does (as text) and lets it in
    assert response.status == 200, response.body
