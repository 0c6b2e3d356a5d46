"""Least privilege, measured: each function is granted exactly the calls its code makes, on exactly the
resources and partitions it makes them on.

tests/unit/test_template.py checks the shape of the policies (no wildcard
action, no Scan, secrets scoped to the stage); this checks their content
against what the functions really do. Each function runs through its real
handler on its success path and on the side paths that make extra calls (a
no-op update, a second revoke, a create that loses its races and deletes its
secret, a janitor run), and every AWS request it makes is recorded as IAM
would authorize it (tests/support/iam.py): the action (a transaction needs
the action of each item in it; tagging a secret on creation needs
TagResource), the resource (which table, which secret) and the request's
`dynamodb:LeadingKeys` (the partition key each item or query touches). Then,
against the function's statements in template.yaml:

- every request is allowed (moto does not enforce IAM; AWS would refuse it), and
  what Secrets Manager asks KMS on the function's behalf (a data key and the
  validation calls on CreateSecret, a decryption on GetSecretValue, with the
  encryption context AWS documents) is allowed by the function's statements
  and by the secrets key's policy (which moto ignores too);
- nothing is spare: each action of each Allow statement, with each partition
  pattern its LeadingKeys condition names, is used by some request;
- every function is denied UpdateItem and DeleteItem on audit entries, and the
  signature authorizer (exported, parsing every unauthenticated request) can
  update nothing but last uses and put nothing but nonces.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from keygate import wiring
from keygate.ports import ConditionFailed
from keygate.records import now_utc
from keygate.storage.dynamodb import DynamoKeyRepository
from keygate.storage.kms import forget_public_keys
from keygate_dev import template
from keygate_dev.store_hooks import StoreClientHooks
from tests.support import iam
from tests.support.apigw_events import ProxyRequest, proxy_event
from tests.support.client import ApiClient, call_handler
from tests.support.clocks import FixedClock
from tests.support.stack import (
    BUILTIN_STEP_UP,
    NONCES_TABLE_NAME,
    REGION,
    SECRETS_KEY_ID,
    STAGE,
    STEP_UP_KEY_ALIAS,
    TABLE_NAME,
    run_janitor,
)

PARAMETERS = iam.pseudo_parameters({"Stage": STAGE}, REGION)
KEY_POLICY = [iam.resolve(statement, PARAMETERS) for statement in
              template.resources("AWS::KMS::Key").get("SecretsKey", {}).get("Properties", {})
              .get("KeyPolicy", {}).get("Statement", [])]
VALIDATION = "RequestToValidateKeyAccess"  # the SecretVersionId of Secrets Manager's validation calls to KMS
TABLES = {TABLE_NAME: "KeysTable", NONCES_TABLE_NAME: "NoncesTable"}
TRANSACTION_ITEM_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
                            "Delete": "dynamodb:DeleteItem", "ConditionCheck": "dynamodb:ConditionCheckItem"}
LEADING_KEYS = "dynamodb:LeadingKeys"


def _partition(params: Mapping[str, Any]) -> str:
    if "KeyConditionExpression" in params:  # every Query names one partition, as `pk = :pk`
        assert params["KeyConditionExpression"].startswith("pk = :pk"), params["KeyConditionExpression"]
        return str(params["ExpressionAttributeValues"][":pk"]["S"])
    return str((params.get("Key") or params["Item"])["pk"]["S"])


def _table_request(action: str, params: Mapping[str, Any]) -> iam.Request:
    return iam.Request(action, TABLES[params["TableName"]], {LEADING_KEYS: (_partition(params),)})


def secret_arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{iam.ACCOUNT}:secret:{name}-AbCdEf"


def _kms_on_behalf(operation: str, params: Mapping[str, Any], arn: str) -> list[iam.Request]:
    """What Secrets Manager asks KMS for the caller (AWS Secrets Manager User Guide, "Secret encryption and
    decryption"): CreateSecret with a key validates access to it (GenerateDataKey and Decrypt, with
    SecretVersionId RequestToValidateKeyAccess), then generates the value's data key; GetSecretValue
    decrypts it. A secret without KmsKeyId uses the AWS managed key, which needs no grant."""
    def kms(action: str, version: str) -> iam.Request:
        return iam.Request(action, "SecretsKey", {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
                                                  "kms:EncryptionContext:SecretARN": arn,
                                                  "kms:EncryptionContext:SecretVersionId": version})

    if operation == "CreateSecret" and params.get("KmsKeyId") is not None:
        assert params["KmsKeyId"] == SECRETS_KEY_ID, "secrets are encrypted with the stack's SecretsKey"
        return [kms("kms:GenerateDataKey", VALIDATION), kms("kms:Decrypt", VALIDATION),
                kms("kms:GenerateDataKey", str(uuid.uuid4()))]
    if operation == "GetSecretValue":
        return [kms("kms:Decrypt", str(uuid.uuid4()))]
    return []


class RequestRecorder:
    """The authorization requests behind the layer's AWS calls (on its own clients, like faults.AwsCalls)."""

    def __init__(self) -> None:
        self.requests: list[iam.Request] = []
        self._hooks = StoreClientHooks({"before-parameter-build.*.*": self._record})
        self._paused = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Another function's requests (the ceremony before a mutation), not recorded."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def watch(self, client: Any) -> None:
        """Record the requests of another client too (one Lambda's service makes with the function's role: the
        event source mapping's stream reads and on-failure sends)."""
        client.meta.events.register("before-parameter-build.*.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        if self._paused:
            return
        if service == "kms":  # the step-up signing key (issue 14), named by its alias in the tests
            assert params["KeyId"] == STEP_UP_KEY_ALIAS, params["KeyId"]
            context = {"kms:SigningAlgorithm": params["SigningAlgorithm"]} if "SigningAlgorithm" in params else {}
            self.requests.append(iam.Request(f"kms:{model.name}", "StepUpSigningKey", context))
        elif service == "events":  # one request per entry: events:source is single-valued
            self.requests += [iam.Request(f"events:{model.name}", f"arn:aws:events:{REGION}:{iam.ACCOUNT}:event-bus/"
                                          f"{entry.get('EventBusName', 'default')}", {"events:source": entry["Source"]})
                              for entry in params["Entries"]]
        elif service == "streams.dynamodb":
            self.requests.append(iam.Request(f"dynamodb:{model.name}", "KeysTable/stream"))
        elif service == "sqs":
            self.requests.append(iam.Request(f"sqs:{model.name}", params["QueueUrl"].rsplit("/", 1)[1]))
        elif model.name == "TransactWriteItems":
            self.requests += [_table_request(TRANSACTION_ITEM_ACTIONS[kind], body)
                              for item in params["TransactItems"] for kind, body in item.items()]
        elif service == "dynamodb":
            self.requests.append(_table_request(f"dynamodb:{model.name}", params))
        else:
            arn = secret_arn(params.get("SecretId") or params["Name"])
            self.requests.append(iam.Request(f"{service}:{model.name}", arn))
            if model.name == "CreateSecret" and params.get("Tags"):
                self.requests.append(iam.Request("secretsmanager:TagResource", arn))
            self.requests += _kms_on_behalf(model.name, params, arn)

    def __enter__(self) -> RequestRecorder:
        self._hooks.install()
        return self

    def __exit__(self, *_: object) -> None:
        self._hooks.uninstall()


def refused(function_id: str, requests: list[iam.Request]) -> list[str]:
    """The requests the function's statements do not allow; for its uses of the secrets key, also those its
    key policy does not allow for the function's role."""
    statements = iam.function_statements(function_id, PARAMETERS)
    refusals = set()
    for request in requests:
        if iam.decide(statements, request) != "allowed":
            refusals.add(request.describe())
        elif request.resource == "SecretsKey":
            as_role = iam.Request(request.action, request.resource,
                                  {**request.context, "aws:PrincipalArn": iam.role_arn(function_id, PARAMETERS)})
            if iam.decide(KEY_POLICY, as_role) != "allowed":
                refusals.add(f"key policy: {as_role.describe()}")
    return sorted(refusals)


def spare(statements: list[dict[str, Any]], requests: list[iam.Request]) -> list[str]:
    """Each (action, partition pattern) an Allow statement grants that no request used."""
    unused = []
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        condition = statement.get("Condition") or {}
        patterns = condition.get("ForAllValues:StringLike", {}).get(LEADING_KEYS) or [None]
        if statement["Resource"] == "KeysTable" and patterns == [None]:
            unused.append(f"{statement['Action']} on every partition of the keys table")  # names no partition
            continue
        for action in statement["Action"]:
            for pattern in patterns:
                narrowed = {**statement, "Action": [action]}
                if pattern is not None:
                    narrowed["Condition"] = {**condition, "ForAllValues:StringLike": {LEADING_KEYS: [pattern]}}
                if not any(iam.matches(narrowed, request) for request in requests):
                    unused.append(f"{action} on {statement['Resource']}" + (f" [{pattern}]" if pattern else ""))
    return unused


# ------------------------------------------------------------------- scenarios
@dataclass
class World:
    client: ApiClient
    key_id: str  # alice's key, created before recording starts
    monkeypatch: pytest.MonkeyPatch
    fixture: Callable[[str], Any]
    recorder: RequestRecorder | None = None


def lose_create_races(client: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A create whose commit loses five times (a rival create commits first each time) deletes its secret."""
    original, busy = DynamoKeyRepository.commit_create, []

    def contested(*args: Any, **kwargs: Any) -> None:
        if not busy:
            busy.append(True)
            try:
                assert client.create(label="rival").status == 200
            finally:
                busy.clear()
        original(*args, **kwargs)

    monkeypatch.setattr(DynamoKeyRepository, "commit_create", contested)
    assert client.create(label="loser").status == 409
    monkeypatch.setattr(DynamoKeyRepository, "commit_create", original)


def lose_rotation_races(client: ApiClient, key_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotation whose commit loses five times deletes the secret it made, and its cleanup entry."""
    def contested(*args: Any, **kwargs: Any) -> None:
        raise ConditionFailed("ConditionalCheckFailed")

    original = DynamoKeyRepository.commit_rotation
    monkeypatch.setattr(DynamoKeyRepository, "commit_rotation", contested)
    assert client.rotate(key_id).status == 409
    monkeypatch.setattr(DynamoKeyRepository, "commit_rotation", original)


def _bot_reads_its_key(world: World) -> None:
    event = proxy_event(ProxyRequest("GET", "/v1/trade/api-keys/self"), "/v1/trade/api-keys/self", {},
                        {"principalId": "alice", "user_id": "alice", "key_id": world.key_id})
    assert call_handler("GetCallingApiKeyFunction", event).status == 200


def _signed_requests(world: World) -> None:
    gate = world.fixture("gate")
    key = gate.create_key(permissions=["read", "trade"])
    with RequestRecorder() as recorder:  # only the authorizer's own requests, not the create's
        assert gate.send(key).status == 200
        assert gate.send((key[0][:-4] + "AAAA", key[1])).status == 401  # unknown (or malformed) key id
    world.recorded = recorder.requests  # type: ignore[attr-defined]


def _publisher_runs(world: World) -> None:
    """The publisher's event source mapping reading the stream, an entry EventBridge never accepts going to the
    on-failure destination, then a change published."""
    import boto3

    from keygate.storage.events import EventBridgePublisher
    from tests.support.lifecycle import stream_source

    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="LifecycleEventsDeadLetterQueue")["QueueUrl"]  # named as its logical id
    source = stream_source()
    source.max_retries, source.on_failure = 1, (sqs, queue)
    original = EventBridgePublisher.put
    world.monkeypatch.setattr(EventBridgePublisher, "put", lambda self, events: [False] * len(events))
    with RequestRecorder() as recorder:
        recorder.watch(source.streams)
        recorder.watch(sqs)
        source.poll_once(), source.poll_once()  # retried once, then sent to the destination
        world.monkeypatch.setattr(EventBridgePublisher, "put", original)
    recorded = recorder.requests
    assert world.client.update(world.key_id, label="renamed").status == 200
    with RequestRecorder() as recorder:
        recorder.watch(source.streams)
        source.drain()
    world.recorded = recorded + recorder.requests  # type: ignore[attr-defined]


def _expiry_notices_run(world: World) -> None:
    # A key that expires in 8 days and one revoked before it expires: a run 9 days later sends the first's
    # notices and drops the second's
    world.client.create(label="expiring", expires_days=8)
    revoked = world.client.create(label="revoked", expires_days=8).json()["api_key"]
    world.client.revoke(revoked)
    with RequestRecorder() as recorder:
        from tests.support.stack import layer
        layer().lifecycle.at(FixedClock(now_utc() + timedelta(days=9))).send_expiry_notices()
    world.recorded = recorder.requests  # type: ignore[attr-defined]


def _janitor_run(world: World) -> None:
    # A key that expires in a day, and a janitor run two days later: the expiry's cleanup entry falls due
    world.client.create(label="expiring", expires_days=1)
    with RequestRecorder() as recorder:  # only the janitor's requests
        run_janitor(FixedClock(now_utc() + timedelta(days=2)))
    world.recorded = recorder.requests  # type: ignore[attr-defined]


def _exchange_events(world: World) -> None:
    from keygate_dev.lambda_runner import LambdaContext
    from tests.support.exchange import Wallet, envelope, sqs_batch, trade

    wallet = Wallet.new()
    batch = sqs_batch(envelope(wallet.authorization("zoe")), trade("zoe"), envelope(wallet.authorization("zoe")))
    answer = template.load_handler("ExchangeEventsFunction")(batch, LambdaContext("ExchangeEventsFunction"))
    assert answer == {"batchItemFailures": []}


def _secret_scanning(world: World) -> None:
    from keygate import keys
    from tests.support.github import ENDPOINT, GitHubScanner, report

    scanner = GitHubScanner()
    world.monkeypatch.setattr("keygate.secret_scanning._fetch", lambda url: scanner.keys_document())
    secret = world.client.create(label="leaked").json()["api_secret"]
    body = report(secret, keys.new_secret(), "not-a-secret", secret)  # revoked, unknown, malformed, again
    with RequestRecorder() as recorder:  # only the endpoint's requests, not the create's
        assert world.client.gateway.request("POST", ENDPOINT, headers=scanner.headers(body), body=body).status == 200
    world.recorded = recorder.requests  # type: ignore[attr-defined]


def _operator_revoke(world: World) -> None:
    import json

    from keygate_dev import admin, local_iam

    def revoke(body: dict[str, str]) -> None:
        raw = json.dumps(body).encode()
        headers = admin.signed_headers("http://localhost" + admin.PATH, raw, local_iam.LOCAL_OPERATOR_CREDENTIALS,
                                       REGION)
        assert world.client.gateway.request("POST", admin.PATH, headers=headers, body=raw).status == 200

    revoke({"user_id": "alice", "api_key": world.key_id, "reason": "one key"})
    revoke({"user_id": "alice", "reason": "every key"})


def _register_passkeys(world: World) -> None:
    # A second passkey (alice's first was registered by her first key's ceremony), confirmed with the first
    assert world.recorder is not None
    with world.recorder.paused():
        token = world.client.ceremony("alice", "passkeys:register")
        options = world.client.call("POST", "/v1/trade/passkeys/registration/options").json()
    laptop = type(world.client.authenticator("alice"))(origin=world.client.authenticator("alice").origin)
    assert world.client.call("POST", "/v1/trade/passkeys", body={"credential": laptop.create(options)},
                             headers={"X-PASSKEY-TOKEN": token}, step_up=None).status == 201


def _delete_passkey(world: World) -> None:
    assert world.recorder is not None
    with world.recorder.paused():
        [passkey] = world.client.call("GET", "/v1/trade/passkeys").json()["passkeys"]
        token = world.client.ceremony("alice", "passkeys:delete", passkey_id=passkey["passkey_id"])
    assert world.client.call("DELETE", f"/v1/trade/passkeys/{passkey['passkey_id']}", step_up=token).status == 200


def _step_up_options(world: World) -> None:
    assert world.recorder is not None
    with world.recorder.paused():
        [handle] = [key["id"] for key in world.client.call("GET", "/v1/api-keys").json()["keys"]]
    assert world.client.step_up_options("alice", "api_keys:update", api_key=world.key_id,
                                        request={"label": "x"}).status == 200
    assert world.client.step_up_options("alice", "api_keys:revoke", profile="zdex", id=handle).status == 200


def _step_up(world: World) -> None:
    # A step-up, then one whose counter went backwards (audited as a suspected clone)
    assert world.recorder is not None
    device = world.client.authenticator("alice")
    for sign_count in (None, 1):
        with world.recorder.paused():
            options = world.client.step_up_options("alice", "api_keys:create").json()
        answer = world.client.call("POST", "/v1/trade/step-up", body={"credential": device.get(
            options, **({} if sign_count is None else {"sign_count": sign_count}))})
        assert answer.status == (200 if sign_count is None else 403), answer.text


def _list_passkeys(world: World) -> None:
    assert world.client.call("GET", "/v1/trade/passkeys").json()["count"] == 1


# function id -> the requests that exercise every AWS call its code can make
SCENARIOS: dict[str, Callable[[World], object]] = {
    "CreateApiKeyFunction": lambda world: (world.client.create(label="plain", permissions=["read", "trade"],
                                                               expires_days=30),
                                           lose_create_races(world.client, world.monkeypatch)),
    "ListApiKeysFunction": lambda world: world.client.list(),
    "UpdateApiKeyFunction": lambda world: (world.client.update(world.key_id, permissions=["read", "trade"]),
                                           world.client.update(world.key_id, label="bot")),
    "RevokeApiKeyFunction": lambda world: (world.client.revoke(world.key_id), world.client.revoke(world.key_id)),
    "RevokeAllApiKeysFunction": lambda world: (world.client.revoke_all(), world.client.revoke_all()),
    "RotateApiKeyFunction": lambda world: (world.client.rotate(world.key_id), world.client.rotate(world.key_id),
                                           lose_rotation_races(world.client, world.key_id, world.monkeypatch)),
    "GetApiKeyAuditFunction": lambda world: world.client.audit(world.key_id),
    "GetCallingApiKeyFunction": _bot_reads_its_key,
    "SecretJanitorFunction": _janitor_run,
    "PublishLifecycleEventsFunction": _publisher_runs,
    "ExpiryNoticesFunction": _expiry_notices_run,
    "SignatureAuthorizerFunction": _signed_requests,
    "ExchangeEventsFunction": _exchange_events,
    "SecretScanningFunction": _secret_scanning,
    "OperatorRevokeFunction": _operator_revoke,
    # Issue 14: the passkey functions
    "PasskeyRegistrationOptionsFunction": lambda world: world.client.call(
        "POST", "/v1/trade/passkeys/registration/options"),
    "RegisterPasskeyFunction": _register_passkeys,
    "ListPasskeysFunction": _list_passkeys,  # (alice's passkey and its audit entry exist: see the Given)
    "DeletePasskeyFunction": _delete_passkey,
    "StepUpOptionsFunction": _step_up_options,
    "StepUpFunction": _step_up,
}
# Functions that call no AWS service at all: they must be granted nothing.
NO_AWS_CALLS = {"SessionAuthorizerFunction", "GetServerTimeFunction"}


@pytest.mark.parametrize("stack_env", [BUILTIN_STEP_UP], indirect=True, ids=["builtin-step-up"])
@pytest.mark.parametrize("function_id", sorted(SCENARIOS))
def test_each_function_is_granted_exactly_what_it_calls_where_it_calls_it(client, alice, monkeypatch, request,
                                                                          function_id):
    # Given a key that a function's requests can act on, on the built-in step-up (a mutation's token is a
    # real ceremony, run by the other functions with the recorder paused)
    key_id = client.create(label="bot").json()["api_key"]
    world = World(client, key_id, monkeypatch, request.getfixturevalue)
    forget_public_keys()  # each function fetches the signing key's public half on its first token (a new
    wiring.forget()  # warm instance: its verifier caches the key too)
    # When the function's requests run (each through its real handler) and their AWS requests are recorded
    with RequestRecorder() as recorder:
        world.recorder = recorder
        client.ceremony_guard = recorder.paused
        SCENARIOS[function_id](world)
    requests = getattr(world, "recorded", recorder.requests)
    assert requests
    # Then the function's statements in template.yaml allow every one of them, on its table, secret and
    # partition ...
    assert refused(function_id, requests) == []
    # ... and grant nothing they did not use
    assert spare(iam.function_statements(function_id, PARAMETERS), requests) == []


@pytest.mark.parametrize("function_id", sorted(NO_AWS_CALLS))
def test_functions_that_call_no_aws_service_are_granted_nothing(function_id):
    assert [statement for statement in iam.function_statements(function_id, PARAMETERS)
            if statement["Effect"] == "Allow"] == []


def test_the_scenarios_cover_every_function():
    assert set(SCENARIOS) | NO_AWS_CALLS == set(template.function_ids())


@pytest.mark.parametrize("function_id", template.function_ids())
@pytest.mark.parametrize("action", ["dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                                    "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"])
def test_no_function_may_change_or_remove_an_audit_entry(function_id, action):
    # Given any function, whatever its Allow statements say
    statements = iam.function_statements(function_id, PARAMETERS)
    # When it would change or remove an audit entry (alone, or beside another item in one request)
    for partitions in (("AUDIT#kgk_abc",), ("USER#alice", "AUDIT#kgk_abc")):
        # Then IAM denies it explicitly
        assert iam.decide(statements, iam.Request(action, "KeysTable", {LEADING_KEYS: partitions})) == "denied"


@pytest.mark.parametrize(("action", "table", "partition"), [
    ("dynamodb:PutItem", "KeysTable", "USER#alice"), ("dynamodb:PutItem", "KeysTable", "USAGE#alice"),
    ("dynamodb:PutItem", "KeysTable", "KEY#kgk_abc"), ("dynamodb:UpdateItem", "KeysTable", "USER#alice"),
    ("dynamodb:UpdateItem", "KeysTable", "KEY#kgk_abc"), ("dynamodb:UpdateItem", "KeysTable", "STEPUP#jti"),
    ("dynamodb:DeleteItem", "KeysTable", "USER#alice"), ("dynamodb:DeleteItem", "NoncesTable", "kgk_abc#nonce"),
    ("dynamodb:GetItem", "KeysTable", "AUDIT#kgk_abc"), ("dynamodb:GetItem", "KeysTable", "SECRET_CLEANUP"),
    ("dynamodb:Query", "KeysTable", "USER#alice"), ("dynamodb:UpdateItem", "NoncesTable", "kgk_abc#nonce"),
])
def test_the_signature_authorizer_cannot_touch_what_it_does_not_need(action, table, partition):
    # Given the exported authorizer's statements: it parses every unauthenticated request of the exchange
    statements = iam.function_statements("SignatureAuthorizerFunction", PARAMETERS)
    # Then it may read pointers and records, update last uses and put nonces, and nothing else
    assert iam.decide(statements, iam.Request(action, table, {LEADING_KEYS: (partition,)})) != "allowed"


def test_the_recorder_sees_the_items_of_a_transaction(client, alice):
    # A control for the comparison above: a create's commit shows up as the actions of its items, each with
    # its own partition
    with RequestRecorder() as recorder:
        client.create()
    touched = {(request.action, request.context[LEADING_KEYS][0].split("#")[0]) for request in recorder.requests
               if request.action.startswith("dynamodb:")}
    assert {("dynamodb:PutItem", "STEPUP"), ("dynamodb:UpdateItem", "USER"), ("dynamodb:PutItem", "AUDIT"),
            ("dynamodb:DeleteItem", "SECRET_CLEANUP")} <= touched
    assert "dynamodb:TransactWriteItems" not in {request.action for request in recorder.requests}
