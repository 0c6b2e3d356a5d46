"""AWS WAF in front of KeyGate's stage (issue 13, finding 2).

WAF does not run locally (docs/architecture.md, "Throttling"), so these tests prove its configuration:
the rules and their aggregation keys, the 429 it answers, the parameters' bounds, the association with
the stage, the log that redacts credentials, and that SAM's offline transform accepts it all.
"""

from __future__ import annotations

import json

import pytest

from keygate_dev import template
from tests.unit.test_template import _deployed, _only

RESOURCES = template.load_template()["Resources"]
PARAMETERS = template.load_template()["Parameters"]
ACL = RESOURCES["KeyGateWebAcl"]["Properties"]
RULES = {rule["Name"]: rule for rule in ACL["Rules"]}
RATE_RULES = ("rate-per-ip", "rate-per-api-key")


def test_the_web_acl_is_regional_allows_by_default_and_has_three_rules_in_order():
    assert RESOURCES["KeyGateWebAcl"]["Type"] == "AWS::WAFv2::WebACL"
    assert ACL["Scope"] == "REGIONAL" and ACL["DefaultAction"] == {"Allow": {}}
    assert [rule["Name"] for rule in sorted(ACL["Rules"], key=lambda rule: rule["Priority"])] == [
        "known-bad-inputs", "rate-per-ip", "rate-per-api-key"]
    # Each rule's metric is named after it (the Rule dimension the alarms use), the ACL's after the ACL
    for name, rule in RULES.items():
        assert rule["VisibilityConfig"] == {"MetricName": name, "CloudWatchMetricsEnabled": True,
                                            "SampledRequestsEnabled": True}
    assert ACL["VisibilityConfig"]["MetricName"] == ACL["Name"]


def test_aws_known_bad_inputs_rule_group_is_enforced():
    rule = RULES["known-bad-inputs"]
    assert rule["Statement"] == {"ManagedRuleGroupStatement": {"VendorName": "AWS",
                                                               "Name": "AWSManagedRulesKnownBadInputsRuleSet"}}
    assert rule["OverrideAction"] == {"None": {}}  # the group's own Block actions apply, not Count


def test_the_per_ip_rule_counts_by_source_ip():
    statement = RULES["rate-per-ip"]["Statement"]["RateBasedStatement"]
    assert statement == {"AggregateKeyType": "IP", "Limit": {"Ref": "WafRateLimitPerIp"},
                         "EvaluationWindowSec": {"Ref": "WafRateLimitWindowSeconds"}}


def test_the_per_key_rule_counts_the_key_id_and_the_source_ip_together():
    # Given the per-key rule (WAF counts before the authorizer has checked any signature)
    statement = RULES["rate-per-api-key"]["Statement"]["RateBasedStatement"]
    # Then it aggregates on the X-KG-API-KEY header AND the source IP: a flood of unsigned requests carrying a
    # victim's key id is counted against the flooder's address, never against the victim's own budget
    assert statement["AggregateKeyType"] == "CUSTOM_KEYS"
    keys = statement["CustomKeys"]
    assert len(keys) == 2 and {"IP": {}} in keys
    [header] = [key["Header"] for key in keys if "Header" in key]
    assert header["Name"] == "x-kg-api-key"
    assert header["TextTransformations"] == [{"Priority": 0, "Type": "NONE"}]  # key ids are compared as sent
    assert statement["Limit"] == {"Ref": "WafRateLimitPerApiKey"}
    assert statement["EvaluationWindowSec"] == {"Ref": "WafRateLimitWindowSeconds"}


@pytest.mark.parametrize("rule", RATE_RULES)
def test_a_rate_blocked_request_gets_429_throttled_in_the_error_shape_with_retry_after(rule):
    # Given the custom response a rate rule blocks with
    response = RULES[rule]["Action"]["Block"]["CustomResponse"]
    # Then it is 429 with Retry-After: the evaluation window, after which a client that paused is under the limit
    assert response["ResponseCode"] == 429
    assert response["ResponseHeaders"] == [{"Name": "Retry-After", "Value": {"Ref": "WafRateLimitWindowSeconds"}}]
    # And its body is JSON in the error shape (docs/product.md) with code THROTTLED
    body = ACL["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    rendered = json.loads(body["Content"])
    assert set(rendered) == {"ok", "error"} and rendered["ok"] is False
    assert set(rendered["error"]) == {"code", "message"}
    assert rendered["error"]["code"] == "THROTTLED" and rendered["error"]["message"]


@pytest.mark.parametrize("name", ["WafRateLimitPerIp", "WafRateLimitPerApiKey"])
def test_rate_limits_are_parameters_within_wafs_bounds(name):
    parameter = PARAMETERS[name]
    assert parameter["Type"] == "Number"
    assert parameter["MinValue"] == 10 and parameter["MaxValue"] == 2_000_000_000  # WAF's own bounds
    assert 10 <= parameter["Default"] <= parameter["MaxValue"]


def test_the_evaluation_window_is_one_of_wafs_windows():
    parameter = PARAMETERS["WafRateLimitWindowSeconds"]
    assert parameter["Type"] == "Number" and parameter["AllowedValues"] == [60, 120, 300, 600]
    assert parameter["Default"] in parameter["AllowedValues"]


def test_the_per_key_limit_is_below_the_per_ip_limit_by_default():
    # One address running several bots gets the per-key budget for each key, up to the per-IP budget in total.
    assert PARAMETERS["WafRateLimitPerApiKey"]["Default"] < PARAMETERS["WafRateLimitPerIp"]["Default"]


def test_the_web_acl_is_associated_with_keygates_stage():
    association = RESOURCES["KeyGateWebAclAssociation"]
    assert association["Type"] == "AWS::WAFv2::WebACLAssociation"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["KeyGateWebAcl", "Arn"]}
    assert association["Properties"]["ResourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}"
                                                                   "::/restapis/${KeyGateApi}/stages/${KeyGateApi.Stage}"}


def test_after_the_offline_transform_the_association_names_the_generated_stage_so_it_deploys_after_it():
    # When SAM transforms the template as `sam validate` does, offline
    deployed = _deployed(template.load_template())
    # Then the association's ARN references the AWS::ApiGateway::Stage SAM generated (an implicit DependsOn)
    stage_id, _ = _only(deployed, "AWS::ApiGateway::Stage")
    _, association = _only(deployed, "AWS::WAFv2::WebACLAssociation")
    assert "${" + stage_id + "}" in association["Properties"]["ResourceArn"]["Fn::Sub"]
    # And the web ACL, its logging and the association reach CloudFormation unchanged
    assert deployed["Resources"]["KeyGateWebAcl"] == RESOURCES["KeyGateWebAcl"]
    assert deployed["Resources"]["KeyGateWebAclLogging"] == RESOURCES["KeyGateWebAclLogging"]


def test_the_web_acl_is_exported_and_the_protected_api_example_attaches_it():
    output = template.load_template()["Outputs"]["WebAclArn"]
    assert output["Value"] == {"Fn::GetAtt": ["KeyGateWebAcl", "Arn"]}
    assert output["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-WebAclArn"}
    example = template.load_template(template.EXAMPLE_TEMPLATE_PATH)
    [association] = [resource["Properties"] for resource in example["Resources"].values()
                     if resource["Type"] == "AWS::WAFv2::WebACLAssociation"]
    assert association["WebACLArn"] == {"Fn::ImportValue": {"Fn::Sub": "${KeyGateStackName}-WebAclArn"}}
    assert association["ResourceArn"]["Fn::Sub"].endswith("/restapis/${OrdersApi}/stages/${OrdersApi.Stage}")
    deployed = _deployed(example)
    stage_id, _ = _only(deployed, "AWS::ApiGateway::Stage")
    _, transformed = _only(deployed, "AWS::WAFv2::WebACLAssociation")
    assert "${" + stage_id + "}" in transformed["Properties"]["ResourceArn"]["Fn::Sub"]


def test_the_waf_log_keeps_blocked_requests_only_and_redacts_every_credential():
    logging = RESOURCES["KeyGateWebAclLogging"]["Properties"]
    assert logging["ResourceArn"] == {"Fn::GetAtt": ["KeyGateWebAcl", "Arn"]}
    # Its destination is the stack's aws-waf-logs-* group (WAF's required prefix), with the stack's retention
    log_group = RESOURCES["KeyGateWebAclLogs"]["Properties"]
    assert log_group["LogGroupName"]["Fn::Sub"].startswith("aws-waf-logs-")
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    [destination] = logging["LogDestinationConfigs"]
    assert destination["Fn::Sub"].endswith(":log-group:${KeyGateWebAclLogs}")  # no ":*" suffix
    # No session token, step-up token or signature reaches the log
    redacted = {field["SingleHeader"]["Name"] for field in logging["RedactedFields"]}
    assert redacted == {"authorization", "x-passkey-token", "x-kg-signature"}
    # Only what WAF blocked or counted is kept (allowed requests are in the API's access log)
    assert logging["LoggingFilter"]["DefaultBehavior"] == "DROP"
    [kept] = logging["LoggingFilter"]["Filters"]
    assert kept["Behavior"] == "KEEP"
    assert {condition["ActionCondition"]["Action"] for condition in kept["Conditions"]} == {"BLOCK", "COUNT"}
