"""The security team's revoke (POST /v1/admin/revocations, AWS_IAM) through the local gateway: SigV4-signed as
`keygate admin revoke` signs it, audited with the caller's IAM identity; unsigned or badly signed requests
change nothing. The stack's resource policy, which admits OperatorPrincipals only, is evaluated as IAM would."""

from __future__ import annotations

import json

import pytest
from botocore.credentials import Credentials

from keygate_dev import admin, local_iam, template
from tests.support import iam
from tests.support.stack import REGION, STAGE, state_snapshot, table_items

URL = "http://localhost" + admin.PATH  # what the in-process gateway's requests are addressed to


def _post(client, body: dict, *, credentials=local_iam.LOCAL_OPERATOR_CREDENTIALS, sign: bool = True,
          tamper: bool = False):
    raw = json.dumps(body).encode()
    headers = admin.signed_headers(URL, raw, credentials, REGION) if sign else {"Content-Type": "application/json"}
    if tamper:
        raw = json.dumps({**body, "user_id": "mallory"}).encode()
    return client.gateway.request("POST", admin.PATH, headers=headers, body=raw)


def _audit(key_id: str) -> list[dict]:
    return [item for item in table_items() if item["pk"] == f"AUDIT#{key_id}"]


def test_an_operator_revokes_one_key_audited_with_their_identity(client, alice):
    # Given two of alice's keys
    first, second = (client.create(label=label).json()["api_key"] for label in ("one", "two"))
    # When the security team revokes the first, with a reason
    answer = _post(client, {"user_id": "alice", "api_key": first, "reason": "posted in a forum"})
    # Then it is revoked (and only it), audited with the operator's ARN and the reason
    assert answer.status == 200, answer.body
    assert answer.json() == {"user_id": "alice", "revoked": [first], "operator": local_iam.LOCAL_OPERATOR_ARN}
    [entry] = [item for item in _audit(first) if item["event"] == "key_revoked_operator"]
    assert entry["details"] == {"reason": "posted in a forum", "operator": local_iam.LOCAL_OPERATOR_ARN}
    statuses = {key["api_key"]: key["status"] for key in client.list().json()["data"]} \
        if "data" in client.list().json() else None
    records = {item["key_id"]: item["status"] for item in table_items() if item.get("type") == "key"}
    assert records == {first: "revoked", second: "active"}, statuses
    # And again: nothing more to revoke, no second entry
    assert _post(client, {"user_id": "alice", "api_key": first, "reason": "again"}).json()["revoked"] == []
    assert len([item for item in _audit(first) if item["event"] == "key_revoked_operator"]) == 1


def test_an_operator_revokes_every_key_of_a_user(client, alice):
    keys = [client.create(label=f"k{n}").json()["api_key"] for n in range(3)]
    answer = _post(client, {"user_id": "alice", "reason": "account takeover"})
    assert answer.status == 200 and sorted(answer.json()["revoked"]) == sorted(keys)


def test_another_users_key_is_not_found(client, alice):
    key = client.create(label="alice's").json()["api_key"]
    before = state_snapshot()
    answer = _post(client, {"user_id": "bob", "api_key": key, "reason": "wrong user"})
    assert answer.status == 404 and answer.json()["error"]["code"] == "KEY_NOT_FOUND"
    assert state_snapshot() == before


@pytest.mark.parametrize("case", ["unsigned", "another access key", "tampered body"])
def test_a_request_without_the_operators_signature_changes_nothing(client, alice, case):
    key = client.create(label="bot").json()["api_key"]
    before = state_snapshot()
    body = {"user_id": "alice", "api_key": key, "reason": "not an operator"}
    if case == "unsigned":
        answer = _post(client, body, sign=False)
    elif case == "another access key":
        answer = _post(client, body, credentials=Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG"))
    else:
        answer = _post(client, body, tamper=True)
    assert answer.status in (403, 404), answer.body
    assert state_snapshot() == before


PARAMETERS = iam.pseudo_parameters({"Stage": STAGE, "OperatorPrincipals":
                                    "arn:aws:iam::123456789012:role/security-team"}, REGION)


def _resource_policy(parameters: dict) -> list[dict]:
    statements = template.load_template()["Resources"]["KeyGateApi"]["Properties"]["Auth"]["ResourcePolicy"][
        "CustomStatements"]
    resolved = []
    for statement in statements:
        condition = statement.get("Condition")
        if isinstance(condition, dict) and "Fn::If" in condition:
            _, when, otherwise = condition["Fn::If"]
            chosen = when if parameters["OperatorPrincipals"] else otherwise
            statement = {**statement, "Condition": chosen} if chosen != {"Ref": "AWS::NoValue"} else \
                {key: value for key, value in statement.items() if key != "Condition"}
        if "Condition" in statement:
            arns = parameters["OperatorPrincipals"].split(",")
            statement = {**statement, "Condition": {"ArnNotLike": {"aws:PrincipalArn": arns}}}
        resolved.append(iam.resolve(statement, parameters))
    return resolved


@pytest.mark.parametrize(("principal", "resource", "operators", "decision"), [
    ("arn:aws:iam::123456789012:role/security-team", "execute-api:/dev/POST/v1/admin/revocations",
     "arn:aws:iam::123456789012:role/security-team", "allowed"),
    ("arn:aws:iam::123456789012:role/developer", "execute-api:/dev/POST/v1/admin/revocations",
     "arn:aws:iam::123456789012:role/security-team", "denied"),
    ("arn:aws:iam::123456789012:role/security-team", "execute-api:/dev/POST/v1/admin/revocations", "", "denied"),
    ("arn:aws:iam::123456789012:role/developer", "execute-api:/dev/GET/v1/trade/api-keys",
     "arn:aws:iam::123456789012:role/security-team", "allowed"),
])
def test_the_resource_policy_admits_only_the_named_operators(principal, resource, operators, decision):
    statements = _resource_policy({**PARAMETERS, "OperatorPrincipals": operators})
    request = iam.Request("execute-api:Invoke", resource, {"aws:PrincipalArn": principal})
    assert iam.decide(statements, request) == decision
