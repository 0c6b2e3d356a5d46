"""template.yaml's issue-3 wiring: the SignatureAuthorizer, its routes, parameters, Gateway Responses and exports."""

import re

import pytest

from keygate.config import AuthorizerConfig, ConfigError, KeyPolicy
from keygate_dev import template
from tests.support.stack import RESOURCE_NAMES

FUNCTIONS = template.resources("AWS::Serverless::Function")
API = template.resources("AWS::Serverless::Api")["KeyGateApi"]["Properties"]
EXAMPLE = template.EXAMPLE_TEMPLATE_PATH


def _events(function_id, template_path=template.TEMPLATE_PATH):
    function = template.resources("AWS::Serverless::Function", template_path)[function_id]
    return [event["Properties"] for event in function["Properties"]["Events"].values()]


def test_the_signature_authorizer_is_a_request_authorizer_without_cache_or_identity_sources():
    # No identity sources: API Gateway invokes it for every request, so a missing header gets its code
    authorizer = API["Auth"]["Authorizers"]["SignatureAuthorizer"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["SignatureAuthorizerFunction", "Arn"]}
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"] == {"ReauthorizeEvery": 0}


def test_the_session_authorizer_is_a_request_authorizer_cached_per_authorization_header():
    # A REQUEST event carries API Gateway's request id (a TOKEN event has none) for the authorizer's logs
    authorizer = API["Auth"]["Authorizers"]["SessionAuthorizer"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["SessionAuthorizerFunction", "Arn"]}
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"] == {"Headers": ["Authorization"],
                                      "ReauthorizeEvery": {"Ref": "SessionAuthorizerCacheTtl"}}


def test_the_example_attaches_the_exported_authorizer_the_same_way():
    outputs = template.load_template()["Outputs"]
    example = template.load_template(EXAMPLE)
    attached = template.resources("AWS::Serverless::Api", EXAMPLE)["OrdersApi"]["Properties"]["Auth"]
    imported = attached["Authorizers"][attached["DefaultAuthorizer"]]
    own = API["Auth"]["Authorizers"]["SignatureAuthorizer"]
    # Same payload, no identity sources either (every refusal gets its code), cache off too
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


def test_cache_and_route_parameters_reach_the_authorizer_with_their_defaults():
    parameters = template.load_template()["Parameters"]
    assert {name: parameters[name]["Default"] for name in (
        "RecordCacheTtlSeconds", "SecretCacheTtlSeconds", "UnknownKeyCacheTtlSeconds", "WithdrawalRoutes",
        "SafeProxyResources")} == {"RecordCacheTtlSeconds": 5, "SecretCacheTtlSeconds": 300,
                                   "UnknownKeyCacheTtlSeconds": 2, "WithdrawalRoutes": "none",
                                   "SafeProxyResources": "none"}
    assert "WithdrawalPathPrefixes" not in parameters
    environment = template.function_environment(
        "SignatureAuthorizerFunction", {"SessionIssuer": "i", "SessionJwksUrl": "https://j", "StepUpIssuer": "s",
                                        "StepUpJwks": "https://k"}, RESOURCE_NAMES)
    config = AuthorizerConfig.from_environ(environment)
    assert (config.record_cache_ttl_seconds, config.secret_cache_ttl_seconds, config.unknown_key_cache_ttl_seconds,
            config.withdrawal_routes, config.safe_proxy_resources) == (5, 300, 2, (), ())


CACHE_TTLS = {"RecordCacheTtlSeconds": "RECORD_CACHE_TTL_SECONDS", "SecretCacheTtlSeconds": "SECRET_CACHE_TTL_SECONDS",
              "UnknownKeyCacheTtlSeconds": "UNKNOWN_KEY_CACHE_TTL_SECONDS"}


@pytest.mark.parametrize(("parameter", "variable"), CACHE_TTLS.items())
def test_a_cache_ttl_is_at_least_a_second_in_the_template_and_the_settings_alike(parameter, variable):
    # A TTL of 0 would keep nothing: every forged request would cost a DynamoDB or Secrets Manager read
    bounds = template.load_template()["Parameters"][parameter]
    assert bounds["MinValue"] == 1
    assert getattr(AuthorizerConfig.from_environ({variable: str(bounds["MinValue"])}), variable.lower()) == 1
    assert getattr(AuthorizerConfig.from_environ({variable: str(bounds["MaxValue"])}),
                   variable.lower()) == bounds["MaxValue"]
    for refused in ("0", "0.5", str(bounds["MaxValue"] + 1)):
        with pytest.raises(ConfigError, match=variable):
            AuthorizerConfig.from_environ({variable: refused})
    if parameter == "RecordCacheTtlSeconds":  # the rotation's usable_from reads it too
        assert KeyPolicy.from_environ({variable: "1"}).record_cache_ttl_seconds == 1
        with pytest.raises(ConfigError, match=variable):
            KeyPolicy.from_environ({variable: "0"})


ROUTES = template.load_template()["Parameters"]["WithdrawalRoutes"]["AllowedPattern"]
PROXIES = template.load_template()["Parameters"]["SafeProxyResources"]["AllowedPattern"]


@pytest.mark.parametrize(("value", "expected"), [
    ("none", ()),
    ("POST /v1/wallet/withdrawals", (("POST", "/v1/wallet/withdrawals"),)),
    ("POST /v1/accounts/{account_id}/withdrawals,ANY /v1/wallet/{proxy+}",
     (("POST", "/v1/accounts/{account_id}/withdrawals"), ("ANY", "/v1/wallet/{proxy+}"))),
    ("post /a, ANY /", (("POST", "/a"), ("ANY", "/"))),
])
def test_withdrawal_routes_parameter_values(value, expected):
    # The template's pattern and the function's settings accept the same entries
    assert re.fullmatch(ROUTES, value.replace("post", "POST"))
    assert AuthorizerConfig.from_environ({"WITHDRAWAL_ROUTES": value}).withdrawal_routes == expected


@pytest.mark.parametrize("value", ["/v1/wallet/withdrawals", "FETCH /v1/x", "POST v1/x", "POST /v1/{x", "POST /a b"])
def test_a_withdrawal_route_that_is_not_method_and_resource_is_refused(value):
    assert not re.fullmatch(ROUTES, value)
    with pytest.raises(ConfigError, match="WITHDRAWAL_ROUTES"):
        AuthorizerConfig.from_environ({"WITHDRAWAL_ROUTES": value})


def test_safe_proxy_resources_are_greedy_resources_only():
    assert re.fullmatch(PROXIES, "/v1/docs/{proxy+},/{proxy+}")
    config = AuthorizerConfig.from_environ({"SAFE_PROXY_RESOURCES": "/v1/docs/{proxy+}, /{proxy+}"})
    assert config.safe_proxy_resources == ("/v1/docs/{proxy+}", "/{proxy+}")
    with pytest.raises(ConfigError, match="SAFE_PROXY_RESOURCES"):
        AuthorizerConfig.from_environ({"SAFE_PROXY_RESOURCES": "/v1/docs/{page}"})


@pytest.mark.parametrize("template_path", [template.TEMPLATE_PATH, EXAMPLE], ids=["keygate", "example"])
def test_every_authorizer_refusal_is_a_401_that_renders_the_denys_code_and_message(template_path):
    responses = template.gateway_responses(template_path)
    # Every refusal is a Deny: ACCESS_DENIED answers 401 in the uniform error shape with the context's code
    assert responses["ACCESS_DENIED"]["StatusCode"] == "401"
    assert responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"] == (
        '{"ok": false, "error": {"code": "$context.authorizer.error_code", '
        '"message": "$context.authorizer.error_message"}}')
    # 503 with Retry-After, never a bare 500: an AWS fault makes the authorizer raise, which API Gateway answers
    # with AUTHORIZER_CONFIGURATION_ERROR (AUTHORIZER_FAILURE alike); the request never reached a backend
    for response_type in ("AUTHORIZER_CONFIGURATION_ERROR", "AUTHORIZER_FAILURE"):
        assert responses[response_type]["StatusCode"] == "503", response_type
        assert responses[response_type]["ResponseParameters"]["Headers"]["Retry-After"] == "'2'", response_type
    # And no DEFAULT_5XX invites a retry on the example's API, whose failed backend may have placed an order
    # (KeyGate's own answers its functions' crashes so: tests/unit/test_template.py)
    if template_path == EXAMPLE:
        assert "DEFAULT_5XX" not in responses


def test_unauthorized_is_only_an_app_route_without_a_session():
    # API Gateway answers UNAUTHORIZED itself when the session authorizer's identity source is missing (no
    # authorizer raises "Unauthorized" any more): it says what to send and quotes the request id
    unauthorized = template.gateway_responses()["UNAUTHORIZED"]
    assert unauthorized["StatusCode"] == "401"
    body = unauthorized["ResponseTemplates"]["application/json"]
    assert body.startswith('{"ok": false, "error": {"code": "UNAUTHORIZED"')
    assert "Authorization: Bearer" in body and "$context.requestId" in body
    # The example API has no session routes and its authorizer no identity sources: it never answers it
    assert "UNAUTHORIZED" not in template.gateway_responses(EXAMPLE)
