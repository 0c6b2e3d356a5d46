"""template.yaml's issue-3 wiring: the SignatureAuthorizer, its routes, parameters, Gateway Responses and exports."""

import pytest

from keygate.config import AuthorizerConfig
from keygate_dev import template
from tests.support.stack import RESOURCE_NAMES

FUNCTIONS = template.resources("AWS::Serverless::Function")
API = template.resources("AWS::Serverless::Api")["KeyGateApi"]["Properties"]
EXAMPLE = template.EXAMPLE_TEMPLATE_PATH


def _events(function_id, template_path=template.TEMPLATE_PATH):
    function = template.resources("AWS::Serverless::Function", template_path)[function_id]
    return [event["Properties"] for event in function["Properties"]["Events"].values()]


def test_the_signature_authorizer_is_a_request_authorizer_without_cache():
    authorizer = API["Auth"]["Authorizers"]["SignatureAuthorizer"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["SignatureAuthorizerFunction", "Arn"]}
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"] == {"Headers": ["X-KG-API-KEY", "X-KG-SIGNATURE"], "ReauthorizeEvery": 0}


def test_the_example_attaches_the_exported_authorizer_the_same_way():
    outputs = template.load_template()["Outputs"]
    example = template.load_template(EXAMPLE)
    attached = template.resources("AWS::Serverless::Api", EXAMPLE)["OrdersApi"]["Properties"]["Auth"]
    imported = attached["Authorizers"][attached["DefaultAuthorizer"]]
    own = API["Auth"]["Authorizers"]["SignatureAuthorizer"]
    # Same payload and identity sources (so the same 401-before-invoke), cache off too
    assert (imported["FunctionPayloadType"], imported["Identity"]) == (own["FunctionPayloadType"], own["Identity"])
    # And what it imports is what KeyGate exports, by the stack-name convention
    exported = ("SignatureAuthorizerArn", "PowertoolsLayerArn", "CommonLayerArn")
    exports = {outputs[name]["Export"]["Name"]["Fn::Sub"] for name in exported}
    assert exports == {f"${{AWS::StackName}}-{name}" for name in exported}
    assert imported["FunctionArn"] == {"Fn::ImportValue": {"Fn::Sub": "${KeyGateStackName}-SignatureAuthorizerArn"}}
    # The example's functions get KeyGate's layers in KeyGate's own order (Powertools first)
    assert example["Globals"]["Function"]["Layers"] == [
        {"Fn::ImportValue": {"Fn::Sub": "${KeyGateStackName}-PowertoolsLayerArn"}},
        {"Fn::ImportValue": {"Fn::Sub": "${KeyGateStackName}-CommonLayerArn"}}]
    assert [layer["Ref"] for layer in template.load_template()["Globals"]["Function"]["Layers"]] == [
        "PowertoolsLayerArn", "CommonLayer"]


def test_bot_routes_use_the_right_authorizer():
    assert _events("GetCallingApiKeyFunction") == [{
        "RestApiId": {"Ref": "KeyGateApi"}, "Path": "/v1/trade/api-keys/self", "Method": "get",
        "Auth": {"Authorizer": "SignatureAuthorizer"}}]
    assert _events("GetServerTimeFunction")[0]["Auth"] == {"Authorizer": "NONE"}
    assert _events("PlaceOrderFunction", EXAMPLE)[0]["Path"] == "/v1/trade/orders"


def _allowed(function_id):
    return [statement for policy in FUNCTIONS[function_id]["Properties"].get("Policies", [])
            for statement in policy["Statement"] if statement["Effect"] == "Allow"]


def test_the_authorizer_may_read_keys_write_nonces_and_last_use_and_read_secrets_only():
    # Which partitions each may touch: tests/integration/test_least_privilege.py
    actions = {action: statement["Resource"] for statement in _allowed("SignatureAuthorizerFunction")
               for action in statement["Action"]}
    assert set(actions) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                            "secretsmanager:GetSecretValue", "kms:Decrypt"}
    assert actions["dynamodb:GetItem"] == actions["dynamodb:UpdateItem"] == {"Fn::GetAtt": ["KeysTable", "Arn"]}
    assert actions["dynamodb:PutItem"] == {"Fn::GetAtt": ["NoncesTable", "Arn"]}
    assert actions["kms:Decrypt"] == {"Fn::GetAtt": ["SecretsKey", "Arn"]}  # what GetSecretValue needs
    calling_key = _allowed("GetCallingApiKeyFunction")
    assert [action for statement in calling_key for action in statement["Action"]] == ["dynamodb:GetItem"]
    assert _allowed("GetServerTimeFunction") == []


def test_cache_parameters_reach_the_authorizer_with_their_defaults():
    parameters = template.load_template()["Parameters"]
    assert {name: parameters[name]["Default"] for name in (
        "RecordCacheTtlSeconds", "SecretCacheTtlSeconds", "UnknownKeyCacheTtlSeconds", "WithdrawalPathPrefixes")} \
        == {"RecordCacheTtlSeconds": 5, "SecretCacheTtlSeconds": 300, "UnknownKeyCacheTtlSeconds": 2,
            "WithdrawalPathPrefixes": "none"}
    environment = template.function_environment(
        "SignatureAuthorizerFunction", {"SessionIssuer": "i", "SessionJwksUrl": "https://j", "StepUpIssuer": "s",
                                        "StepUpJwks": "https://k"}, RESOURCE_NAMES)
    config = AuthorizerConfig.from_environ(environment)
    assert (config.record_cache_ttl_seconds, config.secret_cache_ttl_seconds,
            config.unknown_key_cache_ttl_seconds, config.withdrawal_path_prefixes) == (5, 300, 2, ())


@pytest.mark.parametrize(("value", "expected"), [
    ("none", ()), ("/v1/wallet/withdrawals", ("/v1/wallet/withdrawals",)), ("/a, /b/c", ("/a", "/b/c"))])
def test_withdrawal_prefix_parameter_values(value, expected):
    config = AuthorizerConfig.from_environ({"WITHDRAWAL_PATH_PREFIXES": value})
    assert config.withdrawal_path_prefixes == expected


def test_gateway_responses_carry_the_authorizers_outcome():
    responses = template.gateway_responses()
    # 403: the Deny's context names the refusal
    assert responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"] == (
        '{"ok": false, "error": {"code": "$context.authorizer.error_code", '
        '"message": "$context.authorizer.error_message"}}')
    # 401: no context reaches it, so it says what to check and quotes the request id the logs carry
    unauthorized = responses["UNAUTHORIZED"]["ResponseTemplates"]["application/json"]
    assert "$context.requestId" in unauthorized and "GET /v1/time" in unauthorized
    # 503: an AWS fault in the authorizer
    assert responses["AUTHORIZER_FAILURE"]["StatusCode"] == "503"
    assert responses["AUTHORIZER_FAILURE"]["ResponseParameters"]["Headers"]["Retry-After"] == "'2'"
