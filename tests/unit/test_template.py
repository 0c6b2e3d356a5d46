"""template.yaml is the single source of truth: check what it promises."""

import copy
from pathlib import Path

import pytest
from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse

from keygate_dev import template
from tests.support.stack import REGION

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = template.resources("AWS::Serverless::Function")
SECRET_WRITE_ACTIONS = {"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecret"}


def _statements(function_id):
    for policy in FUNCTIONS[function_id]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, "only inline least-privilege statements"
        yield from policy["Statement"]


def _allowed(function_id):
    return [statement for statement in _statements(function_id) if statement["Effect"] == "Allow"]


def _actions(function_id):
    """The actions a function is granted (its Allow statements; the Deny every function carries aside)."""
    return {action for statement in _allowed(function_id) for action in statement["Action"]}


def test_runtime_is_python313_on_arm64():
    globals_ = template.load_template()["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    for function_id, resource in FUNCTIONS.items():
        assert "Runtime" not in resource["Properties"], function_id
        assert "Architectures" not in resource["Properties"], function_id


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_function_has_its_handler_file(function_id):
    code_uri = ROOT / FUNCTIONS[function_id]["Properties"]["CodeUri"]
    assert (code_uri / "app.py").is_file()
    assert callable(template.load_handler(function_id))


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_no_wildcards_and_no_scan(function_id):
    # Denies only narrow what is allowed: each is the audit entries' (tests/integration/test_least_privilege.py)
    denies = [statement for statement in _statements(function_id) if statement["Effect"] != "Allow"]
    assert all(statement["Effect"] == "Deny" and statement["Condition"] for statement in denies), function_id
    for statement in _allowed(function_id):
        for action in statement["Action"]:
            assert "*" not in action, (function_id, action)
            assert action not in {"dynamodb:Scan", "dynamodb:BatchWriteItem"}, (function_id, action)
        assert statement["Resource"] != "*", function_id


def test_only_the_create_and_rotate_paths_write_secrets_and_only_the_signature_authorizer_reads_them():
    writers = {function_id for function_id in FUNCTIONS if _actions(function_id) & SECRET_WRITE_ACTIONS}
    assert writers == {"CreateApiKeyFunction", "RotateApiKeyFunction"}
    readers = {function_id for function_id in FUNCTIONS if "secretsmanager:GetSecretValue" in _actions(function_id)}
    assert readers == {"SignatureAuthorizerFunction"}


def test_read_only_routes_cannot_write():
    for function_id in ("ListApiKeysFunction", "GetApiKeyAuditFunction", "SessionAuthorizerFunction",
                        "GetCallingApiKeyFunction", "GetServerTimeFunction"):
        assert not {action for action in _actions(function_id)
                    if action.split(":")[1].startswith(("Put", "Update", "Delete", "Create"))}, function_id


def test_secret_permissions_are_scoped_to_the_stage_prefix():
    for function_id in FUNCTIONS:
        for statement in _statements(function_id):
            if any(action.startswith("secretsmanager:") for action in statement["Action"]):
                assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                                                            "${AWS::AccountId}:secret:keygate/${Stage}/*"}


def test_table_is_protected():
    table = template.resources("AWS::DynamoDB::Table")["KeysTable"]
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_ttl", "Enabled": True}
    assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}
    assert table["DeletionPolicy"] == "Retain"


def test_nonces_have_a_table_of_their_own_that_only_the_signature_authorizer_writes():
    # Given the template's tables (issue 13, finding 6: one nonce write per bot request)
    nonces = template.resources("AWS::DynamoDB::Table")["NoncesTable"]["Properties"]
    # Then nonces have their own table: one key, expiring by TTL, encrypted
    assert nonces["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert nonces["TimeToLiveSpecification"] == {"AttributeName": "expires_ttl", "Enabled": True}
    assert nonces["SSESpecification"] == {"SSEEnabled": True}
    # And only the signature authorizer knows its name and may write to it, PutItem alone
    knows = {function_id for function_id, resource in FUNCTIONS.items()
             if "NONCES_TABLE_NAME" in resource["Properties"].get("Environment", {}).get("Variables", {})}
    assert knows == {"SignatureAuthorizerFunction"}
    writers = {(function_id, action) for function_id in FUNCTIONS for statement in _statements(function_id)
               if statement["Resource"] == {"Fn::GetAtt": ["NoncesTable", "Arn"]} for action in statement["Action"]}
    assert writers == {("SignatureAuthorizerFunction", "dynamodb:PutItem")}


def test_the_signature_authorizer_refuses_to_start_without_its_nonces_table():
    from keygate.config import ConfigError
    from keygate.storage import aws
    from keygate.storage.lookup import DynamoKeyLookup

    with pytest.raises(ConfigError, match="NONCES_TABLE_NAME"):
        DynamoKeyLookup(aws.AwsClients(None), "keys", None)


def test_limits_are_parameters_not_constants():
    parameters = template.load_template()["Parameters"]
    for name in ("Stage", "MaxActiveKeysPerUser", "AllowedPermissions", "StepUpIssuer", "StepUpJwks",
                 "StepUpMaxAgeSeconds", "KeyIdPrefix", "LogLevel"):
        assert name in parameters, name
    assert parameters["MaxActiveKeysPerUser"]["Default"] == 10
    assert parameters["AllowedPermissions"]["Default"] == "read,trade"
    assert parameters["StepUpMaxAgeSeconds"]["Default"] == 300


def test_gateway_responses_use_the_error_shape():
    types = template.gateway_responses()
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "AUTHORIZER_CONFIGURATION_ERROR", "AUTHORIZER_FAILURE",
            "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(types)
    for properties in types.values():
        assert properties["ResponseTemplates"]["application/json"].startswith('{"ok": false, "error": {"code": ')
    for response_type in ("AUTHORIZER_CONFIGURATION_ERROR", "AUTHORIZER_FAILURE", "DEFAULT_5XX"):
        assert types[response_type]["StatusCode"] == "503"
        assert types[response_type]["ResponseParameters"]["Headers"]["Retry-After"] == "'2'"


class _NoManagedPolicies:
    """The templates name no AWS managed policy, so the transform needs no IAM lookup (and no credentials)."""

    def load(self) -> dict[str, str]:
        return {}


def _deployed(document: dict) -> dict:
    """The CloudFormation SAM's transform makes of a template, computed offline the way `sam validate` does."""
    validator = SamTemplateValidator(copy.deepcopy(document), _NoManagedPolicies(), region=REGION)
    return yaml_parse(validator.get_translated_template_if_valid())


def _only(deployed: dict, resource_type: str) -> tuple[str, dict]:
    [found] = [(name, resource) for name, resource in deployed["Resources"].items()
               if resource["Type"] == resource_type]
    return found


@pytest.mark.parametrize("template_path", [template.TEMPLATE_PATH, template.EXAMPLE_TEMPLATE_PATH],
                         ids=["keygate", "protected-api-example"])
def test_every_gateway_response_is_part_of_the_deployed_api_definition(template_path):
    # Given the Gateway Responses a template declares on its Api
    declared = template.gateway_responses(template_path)
    assert declared
    # When SAM transforms the template into what CloudFormation deploys
    deployed = _deployed(template.load_template(template_path))
    # Then each one is in the API's OpenAPI body (the input of the Deployment's hash), unchanged ...
    _, rest_api = _only(deployed, "AWS::ApiGateway::RestApi")
    in_body = rest_api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    assert set(in_body) == set(declared)
    for response_type, properties in declared.items():
        rendered = in_body[response_type]
        assert rendered.get("statusCode") == properties.get("StatusCode"), response_type
        assert rendered["responseTemplates"] == properties["ResponseTemplates"], response_type
        assert rendered["responseParameters"] == {
            f"gatewayresponse.header.{name}": value
            for name, value in ((properties.get("ResponseParameters") or {}).get("Headers") or {}).items()}
    # ... and none is a separate resource, which a redeploy of the stage would not pick up
    assert not [name for name, resource in deployed["Resources"].items()
                if resource["Type"] == "AWS::ApiGateway::GatewayResponse"]


@pytest.mark.parametrize("template_path", [template.TEMPLATE_PATH, template.EXAMPLE_TEMPLATE_PATH],
                         ids=["keygate", "protected-api-example"])
def test_the_transformed_template_passes_cfn_lint(template_path):
    # Given what SAM's transform makes of a template: the roles with their policies, the API definition, the
    # permissions (cfn-lint on template.yaml checks the SAM resources before the transform). The parameters'
    # defaults are left out, so that the offline transform keeps `!Ref`s and `${...}`s as CloudFormation's
    # transform does for values given at deploy time (with them, it writes the defaults in as literals, which
    # cfn-lint then reports as unused parameters and needless Subs).
    from cfnlint.api import ManualArgs, lint

    document = copy.deepcopy(template.load_template(template_path))
    for parameter in document.get("Parameters", {}).values():
        parameter.pop("Default", None)
    transformed = SamTemplateValidator(document, _NoManagedPolicies(), region=REGION).get_translated_template_if_valid()
    # When cfn-lint checks it with the serverless rules, as `make lint` checks the templates
    found = lint(transformed, config=ManualArgs(regions=[REGION], append_rules=["cfn_lint_serverless.rules"]))
    # Then it finds nothing (but ES1001 on an SQS event source mapping: Lambda supports an on-failure
    # destination for stream sources only; an SQS queue's failures go to its redrive policy's dead-letter
    # queue, and the rule itself exempts SQS events before the transform)
    resources = yaml_parse(transformed)["Resources"] if isinstance(transformed, str) else transformed["Resources"]

    def sqs_mapping(match: object) -> bool:
        path = getattr(match, "path", [])
        resource = resources.get(path[1], {}) if len(path) > 1 else {}
        source = (resource.get("Properties") or {}).get("EventSourceArn", {})
        queue = source.get("Fn::GetAtt", [""])[0] if isinstance(source, dict) else ""
        return resource.get("Type") == "AWS::Lambda::EventSourceMapping" and \
            resources.get(queue, {}).get("Type") == "AWS::SQS::Queue"

    assert [f"{match.rule.id} {'/'.join(map(str, match.path))}: {match.message}" for match in found
            if not (match.rule.id == "ES1001" and sqs_mapping(match))] == []


@pytest.mark.parametrize("change", ["changed", "added"])
def test_changing_a_gateway_response_redeploys_the_stage(change):
    # Given template.yaml, and a copy whose Gateway Responses differ by one response
    document = template.load_template()
    edited = copy.deepcopy(document)
    responses = edited["Resources"]["KeyGateApi"]["Properties"]["GatewayResponses"]
    if change == "changed":
        responses["DEFAULT_4XX"]["ResponseTemplates"]["application/json"] = \
            '{"error": {"code": "BAD_REQUEST", "message": "edited"}}'
    else:
        assert "REQUEST_TOO_LARGE" not in responses
        responses["REQUEST_TOO_LARGE"] = {"StatusCode": "413", "ResponseTemplates": {
            "application/json": '{"error": {"code": "PAYLOAD_TOO_LARGE", "message": "Too large."}}'}}
    # When SAM transforms both
    deployment, _ = _only(_deployed(document), "AWS::ApiGateway::Deployment")
    edited_deployed = _deployed(edited)
    edited_deployment, _ = _only(edited_deployed, "AWS::ApiGateway::Deployment")
    # Then the edited one gets a new Deployment (a new logical id), which CloudFormation creates and the
    # stage then points at, so the change reaches callers
    assert edited_deployment != deployment
    _, stage = _only(edited_deployed, "AWS::ApiGateway::Stage")
    assert stage["Properties"]["DeploymentId"] == {"Ref": edited_deployment}


def test_janitor_schedule_matches_the_stated_bound():
    from keygate.service import JANITOR_PERIOD

    schedule = FUNCTIONS["SecretJanitorFunction"]["Properties"]["Events"]["EveryFiveMinutes"]["Properties"]
    assert schedule["ScheduleExpression"] == f"rate({int(JANITOR_PERIOD.total_seconds() // 60)} minutes)"


def test_management_routes_use_the_session_authorizer():
    api = template.resources("AWS::Serverless::Api")["KeyGateApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "SessionAuthorizer"
    assert sorted(template.api_routes()) == sorted([
        ("DELETE", "/v1/trade/api-keys/all", "RevokeAllApiKeysFunction"),
        ("DELETE", "/v1/trade/api-keys/{api_key}", "RevokeApiKeyFunction"),
        ("GET", "/v1/time", "GetServerTimeFunction"),
        ("GET", "/v1/trade/api-keys", "ListApiKeysFunction"),
        ("GET", "/v1/trade/api-keys/self", "GetCallingApiKeyFunction"),
        ("GET", "/v1/trade/api-keys/{api_key}/audit", "GetApiKeyAuditFunction"),
        ("PATCH", "/v1/trade/api-keys/{api_key}", "UpdateApiKeyFunction"),
        ("POST", "/v1/trade/api-keys", "CreateApiKeyFunction"),
        ("POST", "/v1/trade/api-keys/{api_key}/rotate", "RotateApiKeyFunction"),
        # ZDEX's routes, served by the same functions
        ("DELETE", "/v1/api-keys/{id}", "RevokeApiKeyFunction"),
        ("GET", "/v1/api-keys", "ListApiKeysFunction"),
        ("PATCH", "/v1/api-keys/{id}", "UpdateApiKeyFunction"),
        ("POST", "/v1/api-keys", "CreateApiKeyFunction"),
        ("POST", "/v1/api-keys/{id}/rotate", "RotateApiKeyFunction"),
        # issue 16: GitHub's secret scanning (signed by GitHub) and the operators' revoke (AWS_IAM)
        ("POST", "/v1/admin/revocations", "OperatorRevokeFunction"),
        ("POST", "/v1/secret-scanning/github", "SecretScanningFunction"),
        # Passkeys and KeyGate's own step-up (issue 14)
        ("POST", "/v1/trade/passkeys/registration/options", "PasskeyRegistrationOptionsFunction"),
        ("POST", "/v1/trade/passkeys", "RegisterPasskeyFunction"),
        ("GET", "/v1/trade/passkeys", "ListPasskeysFunction"),
        ("DELETE", "/v1/trade/passkeys/{passkey_id}", "DeletePasskeyFunction"),
        ("POST", "/v1/trade/step-up/options", "StepUpOptionsFunction"),
        ("POST", "/v1/trade/step-up", "StepUpFunction"),
    ])


@pytest.mark.parametrize("template_path", [template.TEMPLATE_PATH, template.EXAMPLE_TEMPLATE_PATH],
                         ids=["keygate", "protected-api-example"])
def test_sams_transform_accepts_a_signature_authorizer_without_identity_sources(template_path):
    # When SAM transforms the template, offline as `sam validate` does
    deployed = _deployed(template.load_template(template_path))
    _, rest_api = _only(deployed, "AWS::ApiGateway::RestApi")
    # (the operators' AWS_IAM route adds a SigV4 definition, which is no Lambda authorizer)
    authorizers = {name: definition["x-amazon-apigateway-authorizer"]
                   for name, definition in rest_api["Properties"]["Body"]["securityDefinitions"].items()
                   if "x-amazon-apigateway-authorizer" in definition}
    # Then the signature authorizer is a REQUEST authorizer without identity sources and without a result
    # cache (API Gateway invokes it for every request, a missing header included) ...
    signature = authorizers["SignatureAuthorizer" if template_path == template.TEMPLATE_PATH else "KeyGateSignature"]
    assert signature["type"] == "request" and signature["authorizerResultTtlInSeconds"] == 0
    assert "identitySource" not in signature
    # ... and KeyGate's session authorizer a REQUEST authorizer on the Authorization header, its cache kept
    if template_path == template.TEMPLATE_PATH:
        session = authorizers["SessionAuthorizer"]
        assert session["type"] == "request" and session["identitySource"] == "method.request.header.Authorization"
        default_ttl = template.load_template()["Parameters"]["SessionAuthorizerCacheTtl"]["Default"]
        assert session["authorizerResultTtlInSeconds"] in (default_ttl, {"Ref": "SessionAuthorizerCacheTtl"})
