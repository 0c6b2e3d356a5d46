"""Alarms and dashboard (issue 13, "Operations, day one"; docs/operations.md).

CloudWatch accepts an alarm on a metric that never reports and then stays silent, so these tests check
that every metric an alarm or the dashboard names is one KeyGate's resources publish: its namespace,
name and exact dimensions, each dimension pointing at a resource of this template; that every alarm
notifies the alarm topic; and that the dashboard body is JSON naming only this stack's resources.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess  # nosec B404  # bash -n only parses the docs' shell blocks, it runs nothing
from collections.abc import Iterator
from typing import Any

import pytest

from keygate_dev import template
from tests.unit.test_template import _deployed

DOCUMENT = template.load_template()
RESOURCES = DOCUMENT["Resources"]
ALARMS = template.resources("AWS::CloudWatch::Alarm")
FUNCTIONS = template.resources("AWS::Serverless::Function")
TOPIC = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
PSEUDO_PARAMETERS = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix"}
KEYGATE_API = RESOURCES["KeyGateApi"]["Properties"]
WEB_ACL = RESOURCES["KeyGateWebAcl"]["Properties"]
SERVICE = DOCUMENT["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
# The operations KeyGate's code sends to the table (per-operation DynamoDB metrics).
TABLE_OPERATIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "TransactWriteItems"}

# namespace -> (metric names AWS publishes there that KeyGate uses, the exact dimension names)
AWS_METRICS: dict[str, tuple[set[str], set[str]]] = {
    "AWS/ApiGateway": ({"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"}, {"ApiName", "Stage"}),
    "AWS/Lambda": ({"Errors", "Throttles", "Invocations", "Duration"}, {"FunctionName"}),
    "AWS/DynamoDB": ({"ThrottledRequests", "SystemErrors"}, {"TableName", "Operation"}),
    "AWS/SQS": ({"ApproximateNumberOfMessagesVisible"}, {"QueueName"}),
    "AWS/WAFV2": ({"BlockedRequests", "AllowedRequests"}, {"WebACL", "Rule", "Region"}),
}


# --------------------------------------------------------------- what exists
def _emitted_metric_patterns() -> set[str]:
    """Every metric name KeyGate's code adds (Powertools, namespace KeyGate), as regular expressions."""
    patterns = set()
    for path in [*template.ROOT.glob("layers/common/keygate/*.py"), *template.ROOT.glob("functions/*/app.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_metric"):
                continue
            [name] = [keyword.value for keyword in node.keywords if keyword.arg == "name"]
            for value in (name.body, name.orelse) if isinstance(name, ast.IfExp) else (name,):
                if isinstance(value, ast.Constant):
                    patterns.add(re.escape(value.value))
                else:  # f"SignatureRefused{decision.status}": an HTTP status
                    assert isinstance(value, ast.JoinedStr), ast.dump(value)
                    patterns.add("".join(re.escape(part.value) if isinstance(part, ast.Constant) else r"\d{3}"
                                         for part in value.values))
    return patterns


def _metric_filters() -> dict[str, dict[str, Any]]:
    """Metrics the template's log metric filters publish, by name."""
    return {transformation["MetricName"]: transformation
            for resource in template.resources("AWS::Logs::MetricFilter").values()
            for transformation in resource["Properties"]["MetricTransformations"]}


def _is_ref(value: Any, resource_type: str) -> bool:
    return isinstance(value, dict) and set(value) == {"Ref"} and RESOURCES.get(value["Ref"], {}).get(
        "Type") == resource_type


def check_metric(namespace: str, name: str, dimensions: dict[str, Any]) -> None:
    """Assert that this stack's resources publish `name` in `namespace` with exactly these dimensions."""
    where = (namespace, name, dimensions)
    if namespace == "KeyGate":
        filters = _metric_filters()
        if name in filters:  # from a log metric filter: the dimensions it sets
            assert set(dimensions) == {dimension["Key"] for dimension in filters[name].get("Dimensions", [])}, where
            assert dimensions == {"ApiId": {"Ref": "KeyGateApi"}}, where
        else:  # from Powertools Metrics: the service dimension only
            assert any(re.fullmatch(pattern, name) for pattern in _emitted_metric_patterns()), where
            assert dimensions == {"service": SERVICE}, where
        return
    names, dimension_names = AWS_METRICS[namespace]
    assert name in names and set(dimensions) == dimension_names, where
    for key, value in dimensions.items():
        if key == "FunctionName":
            assert _is_ref(value, "AWS::Serverless::Function"), where
        elif key == "TableName":
            assert _is_ref(value, "AWS::DynamoDB::Table"), where
        elif key == "Operation":
            assert value in TABLE_OPERATIONS, where
        elif key == "QueueName":
            assert value["Fn::GetAtt"][1] == "QueueName", where
            assert RESOURCES[value["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue", where
        elif key == "ApiName":
            assert value == KEYGATE_API["Name"], where
        elif key == "Stage":
            assert value == {"Ref": "Stage"} == KEYGATE_API["StageName"], where
        elif key == "WebACL":
            assert value == WEB_ACL["VisibilityConfig"]["MetricName"] == WEB_ACL["Name"], where
        elif key == "Rule":
            assert value in {rule["VisibilityConfig"]["MetricName"] for rule in WEB_ACL["Rules"]}, where
        elif key == "Region":
            assert value == {"Ref": "AWS::Region"}, where


def alarm_metrics(alarm: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of every metric an alarm reads."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        yield (properties["Namespace"], properties["MetricName"],
               {dimension["Name"]: dimension["Value"] for dimension in properties.get("Dimensions", [])})
    for query in properties.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            yield (metric["Namespace"], metric["MetricName"],
                   {dimension["Name"]: dimension["Value"] for dimension in metric.get("Dimensions", [])})


# -------------------------------------------------------------------- alarms
def test_the_alarms_cover_what_issue_13_asks_for():
    watched = {(namespace, name) for alarm in ALARMS.values() for namespace, name, _ in alarm_metrics(alarm)}
    assert {("AWS/ApiGateway", "5XXError"), ("AWS/Lambda", "Errors"), ("KeyGate", "SignatureRefused401"),
            ("KeyGate", "LastUsedRefreshFailed"), ("AWS/WAFV2", "BlockedRequests"), ("KeyGate", "ApiThrottled"),
            ("AWS/Lambda", "Throttles"), ("KeyGate", "SecretCleanupFailed"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/DynamoDB", "ThrottledRequests"),
            ("AWS/DynamoDB", "SystemErrors")} <= watched
    errors = {dimensions["FunctionName"]["Ref"] for alarm in ALARMS.values()
              for _, name, dimensions in alarm_metrics(alarm) if name == "Errors"}
    assert errors == {"SignatureAuthorizerFunction", "SessionAuthorizerFunction", "SecretJanitorFunction"}


@pytest.mark.parametrize("alarm_id", sorted(ALARMS))
def test_each_alarm_reads_metrics_that_this_stack_publishes(alarm_id):
    metrics = list(alarm_metrics(ALARMS[alarm_id]))
    assert metrics, alarm_id
    for namespace, name, dimensions in metrics:
        check_metric(namespace, name, dimensions)


@pytest.mark.parametrize("alarm_id", sorted(ALARMS))
def test_each_alarm_notifies_the_alarm_topic_and_says_what_it_means(alarm_id):
    properties = ALARMS[alarm_id]["Properties"]
    assert properties["AlarmActions"] == [TOPIC] and properties["OKActions"] == [TOPIC]
    assert properties["TreatMissingData"] == "notBreaching"  # no traffic is no alarm
    assert len(properties["AlarmDescription"]) > 40
    runbooks = re.findall(r"docs/runbooks/[a-z-]+\.md", properties["AlarmDescription"])
    assert all((template.ROOT / runbook).is_file() for runbook in runbooks), runbooks
    assert runbooks or "docs/operations.md" in properties["AlarmDescription"]


@pytest.mark.parametrize("alarm_id", sorted(alarm_id for alarm_id, alarm in ALARMS.items()
                                            if "Metrics" in alarm["Properties"]))
def test_each_metric_math_alarm_returns_one_expression_of_its_own_metrics(alarm_id):
    queries = ALARMS[alarm_id]["Properties"]["Metrics"]
    assert len([query for query in queries if "MetricStat" in query]) <= 10  # CloudWatch's limit per alarm
    [returned] = [query for query in queries if query.get("ReturnData")]
    ids = {query["Id"] for query in queries if "MetricStat" in query}
    used = set(re.findall(r"\b([a-z][a-z0-9]*)\b(?!\()", returned["Expression"]))
    assert used == ids, (used, ids)


def test_the_topic_is_the_stacks_own_unless_a_topic_is_given():
    conditions = DOCUMENT["Conditions"]
    assert conditions["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    email_given = {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert conditions["SubscribeAlarmEmail"] == {"Fn::And": [{"Condition": "CreateAlarmTopic"}, email_given]}
    assert RESOURCES["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    assert RESOURCES["AlarmEmailSubscription"]["Condition"] == "SubscribeAlarmEmail"
    assert DOCUMENT["Parameters"]["AlarmTopicArn"]["Default"] == "" == DOCUMENT["Parameters"]["AlarmEmail"]["Default"]
    pattern = DOCUMENT["Parameters"]["AlarmTopicArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "arn:aws:sns:eu-west-1:123456789012:ops-alarms")
    assert not re.fullmatch(pattern, "ops-alarms")
    assert DOCUMENT["Outputs"]["AlarmTopicArn"]["Value"] == TOPIC


def test_the_refusal_share_is_refusals_over_the_signature_authorizers_invocations():
    # Allowed requests publish no metric (docs/architecture.md, "Observability of the signature authorizer"):
    # the share divides SignatureRefused401 by the invocations of that function, the one that publishes it
    queries = {query["Id"]: query for query in ALARMS["SignatureRefusalsAlarm"]["Properties"]["Metrics"]}
    assert next(alarm_metrics({"Properties": {"Metrics": [queries["requests"]]}})) == (
        "AWS/Lambda", "Invocations", {"FunctionName": {"Ref": "SignatureAuthorizerFunction"}})
    assert next(alarm_metrics({"Properties": {"Metrics": [queries["refused"]]}})) == (
        "KeyGate", "SignatureRefused401", {"service": SERVICE})
    assert queries["refusedshare"]["Expression"] == \
        "IF(FILL(requests, 0) >= 20, FILL(refused, 0) / FILL(requests, 0), 0)"


@pytest.mark.parametrize("template_path", [template.TEMPLATE_PATH, template.EXAMPLE_TEMPLATE_PATH],
                         ids=["keygate", "example"])
def test_the_access_log_records_which_key_got_through_from_where_to_what(template_path):
    # The record of every allowed signed request (the authorizer logs refusals only)
    [api] = [resource["Properties"] for resource in template.load_template(template_path)["Resources"].values()
             if resource["Type"] == "AWS::Serverless::Api"]
    fields = json.loads(api["AccessLogSetting"]["Format"])
    assert {name: fields.get(name) for name in ("keyId", "sourceIp", "resourcePath", "status", "requestId")} == {
        "keyId": "$context.authorizer.key_id", "sourceIp": "$context.identity.sourceIp",
        "resourcePath": "$context.resourcePath", "status": "$context.status", "requestId": "$context.requestId"}


def test_the_api_throttling_metric_counts_429s_in_the_access_log():
    [metric_filter] = template.resources("AWS::Logs::MetricFilter").values()
    properties = metric_filter["Properties"]
    assert properties["LogGroupName"] == {"Ref": "KeyGateApiAccessLogs"}
    assert properties["FilterPattern"] == '{ $.status = "429" }'
    [transformation] = properties["MetricTransformations"]
    assert transformation["Dimensions"] == [{"Key": "ApiId", "Value": "$.apiId"}]
    # The access log carries both fields, as strings
    log_format = json.loads(KEYGATE_API["AccessLogSetting"]["Format"])
    assert log_format["status"] == "$context.status" and log_format["apiId"] == "$context.apiId"


def test_the_throttles_alarms_cover_every_function_behind_the_api():
    # Given the functions that answer API requests: the authorizers and every route
    authorizers = {spec["FunctionArn"]["Fn::GetAtt"][0] for spec in KEYGATE_API["Auth"]["Authorizers"].values()}
    routes = {function_id for _, _, function_id in template.api_routes()}
    # Then the throttles alarms read each of them, the authorizers (in front of every API) on their own
    def watched(alarm_id: str) -> set[str]:
        return {dimensions["FunctionName"]["Ref"] for _, name, dimensions in alarm_metrics(ALARMS[alarm_id])
                if name == "Throttles"}

    assert watched("AuthorizerThrottlesAlarm") == authorizers
    # (the passkey routes and the security routes in alarms of their own: an alarm's metric math reads at
    # most 10 metrics)
    assert watched("RouteThrottlesAlarm") | watched("PasskeyRouteThrottlesAlarm") | watched(
        "SecurityRouteThrottlesAlarm") == routes
    assert all(len(ALARMS[alarm_id]["Properties"]["Metrics"]) <= 10
               for alarm_id in ("RouteThrottlesAlarm", "PasskeyRouteThrottlesAlarm", "SecurityRouteThrottlesAlarm"))


def test_the_janitor_has_a_dead_letter_queue_for_both_failure_paths_and_an_alarm_on_it():
    janitor = FUNCTIONS["SecretJanitorFunction"]["Properties"]
    queue = {"Fn::GetAtt": ["SecretJanitorDeadLetterQueue", "Arn"]}
    # A run that fails after Lambda's retries (Scheduler invokes asynchronously) ...
    assert janitor["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": queue}
    # ... and a schedule event Scheduler could not deliver after its own retries
    schedule = janitor["Events"]["EveryFiveMinutes"]["Properties"]
    assert schedule["DeadLetterConfig"] == {"Arn": queue}
    assert schedule["RetryPolicy"]["MaximumEventAgeInSeconds"] < 300  # the next run supersedes it
    [(_, _, dimensions)] = alarm_metrics(ALARMS["SecretJanitorDeadLetterAlarm"])
    assert dimensions == {"QueueName": {"Fn::GetAtt": ["SecretJanitorDeadLetterQueue", "QueueName"]}}
    # And SAM grants exactly the sends to it, to the function's role and to the schedule's
    deployed = _deployed(DOCUMENT)["Resources"]
    for role in ("SecretJanitorFunctionRole", "SecretJanitorFunctionEveryFiveMinutesRole"):
        sends = [statement for policy in deployed[role]["Properties"]["Policies"]
                 for statement in policy["PolicyDocument"]["Statement"] if statement["Action"] == "sqs:SendMessage"]
        assert [statement["Resource"] for statement in sends] == [queue], role


# ----------------------------------------------------------------- dashboard
DASHBOARD_BODY = RESOURCES["KeyGateDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.([A-Za-z]+))?\}")


def _dashboard() -> dict[str, Any]:
    """The body as CloudFormation would render it, each ${X} replaced by a marker naming it."""
    return json.loads(SUBSTITUTION.sub(lambda found: f"<{found.group(0)[2:-1]}>", DASHBOARD_BODY))


def _unrender(value: Any) -> Any:
    """A dashboard dimension value back in template terms (Ref / GetAtt / Sub), for check_metric."""
    if not isinstance(value, str) or "<" not in value:
        return value
    whole = re.fullmatch(r"<([A-Za-z0-9:]+)(?:\.([A-Za-z]+))?>", value)
    if whole and whole.group(2):
        return {"Fn::GetAtt": [whole.group(1), whole.group(2)]}
    if whole:
        return {"Ref": whole.group(1)}
    return {"Fn::Sub": re.sub(r"<([^>]+)>", r"${\1}", value)}


def _dashboard_metrics() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for widget in _dashboard()["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            fields = [field for field in metric if not isinstance(field, dict)]
            namespace, name, *pairs = fields
            yield namespace, name, {pairs[index]: _unrender(pairs[index + 1]) for index in range(0, len(pairs), 2)}


def test_the_dashboard_substitutes_only_this_stacks_resources_parameters_and_pseudo_parameters():
    for name, attribute in SUBSTITUTION.findall(DASHBOARD_BODY):
        assert name in RESOURCES or name in DOCUMENT["Parameters"] or name in PSEUDO_PARAMETERS, name
        assert not attribute or name in RESOURCES, name
    assert "${!" not in DASHBOARD_BODY  # no escaped literal that would not be substituted


def test_the_dashboard_body_is_json_with_laid_out_widgets():
    widgets = _dashboard()["widgets"]
    assert widgets
    for widget in widgets:
        assert widget["type"] in {"metric", "alarm", "log"}
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24, widget["properties"]["title"]
        assert widget["properties"]["title"]


def test_every_dashboard_metric_is_published_by_this_stack():
    for namespace, name, dimensions in _dashboard_metrics():
        if namespace == "AWS/WAFV2" and dimensions.get("Rule") == "ALL":  # the whole web ACL
            dimensions = {**dimensions, "Rule": WEB_ACL["Rules"][0]["VisibilityConfig"]["MetricName"]}
        check_metric(namespace, name, dimensions)


def test_the_dashboard_shows_every_alarm_and_every_metric_an_alarm_reads():
    [alarm_widget] = [widget for widget in _dashboard()["widgets"] if widget["type"] == "alarm"]
    assert alarm_widget["properties"]["alarms"] == [f"<{alarm_id}.Arn>" for alarm_id in ALARMS]
    shown = {(namespace, name, json.dumps(dimensions, sort_keys=True))
             for namespace, name, dimensions in _dashboard_metrics()}
    for alarm_id, alarm in ALARMS.items():
        for namespace, name, dimensions in alarm_metrics(alarm):
            assert (namespace, name, json.dumps(dimensions, sort_keys=True)) in shown, (alarm_id, name, dimensions)


def test_the_dashboard_lambda_throttles_widget_shows_every_function():
    throttled = {dimensions["FunctionName"]["Ref"] for _, name, dimensions in _dashboard_metrics()
                 if name == "Throttles"}
    assert throttled == set(FUNCTIONS)


def test_the_dashboard_log_query_reads_a_log_group_of_this_stack():
    log_groups = {resource["Properties"].get("LogGroupName", {}).get("Fn::Sub")
                  for resource in template.resources("AWS::Logs::LogGroup").values()}
    for widget in _dashboard()["widgets"]:
        if widget["type"] == "log":
            [source] = re.findall(r"SOURCE '([^']+)'", widget["properties"]["query"])
            assert _unrender(source) in [{"Fn::Sub": name} for name in log_groups if name], source


# ---------------------------------------------------------------------- docs
OPERATIONS_DOC = (template.ROOT / "docs" / "operations.md").read_text()
RUNBOOKS = sorted((template.ROOT / "docs" / "runbooks").glob("*.md"))


def test_operations_doc_explains_every_alarm_and_every_metric_keygate_emits():
    for alarm_id, alarm in ALARMS.items():
        suffix = alarm["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        assert f"| `{suffix}` |" in OPERATIONS_DOC, alarm_id
    emitted = {name for pattern in _emitted_metric_patterns()
               for name in re.findall(r"`(\w+)`", OPERATIONS_DOC) if re.fullmatch(pattern, name)}
    literal = {pattern for pattern in _emitted_metric_patterns() if re.fullmatch(r"\w+", pattern)}
    assert literal <= emitted
    assert {"SignatureRefused401", *_metric_filters()} <= set(
        re.findall(r"`(\w+)`", OPERATIONS_DOC))


def test_there_is_a_runbook_for_each_situation_issue_13_names():
    assert {path.name for path in RUNBOOKS} >= {"README.md", "leaked-key-or-secret.md",
                                                 "authorizer-refusing-everyone.md",
                                                 "dynamodb-or-secrets-manager-degraded.md", "mass-revoke.md"}
    index = (template.ROOT / "docs" / "runbooks" / "README.md").read_text()
    for path in RUNBOOKS:
        assert path.name == "README.md" or f"]({path.name})" in index, path.name


@pytest.mark.parametrize("path", [template.ROOT / "docs" / "operations.md", *RUNBOOKS], ids=lambda path: path.name)
def test_every_shell_block_of_the_runbooks_is_valid_bash(path, tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    for number, block in enumerate(re.findall(r"```sh\n(.*?)\n```", path.read_text(), re.DOTALL)):
        script = tmp_path / f"block{number}.sh"
        script.write_text(block + "\n")
        parsed = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603  # parses a doc's block, runs nothing
        assert parsed.returncode == 0, (path.name, number, parsed.stderr)


PREAMBLE = (template.ROOT / "docs" / "runbooks" / "README.md").read_text()


def test_the_runbooks_key_secrets_query_finds_every_secret_of_a_key_and_only_its_own():
    import jmespath

    from keygate.storage.secrets import SecretsManagerVault

    # Given the names KeyGate gives secrets: a key's first one, a rotated one, and other keys' (one whose id the
    # first key's is a prefix of)
    vault = SecretsManagerVault(clients=None, name_prefix="keygate/prod/")  # type: ignore[arg-type]  # names only
    key, other = "kgk_0123456789abcdef", "kgk_0123456789abcdefXY"
    own = [vault.name(key), vault.name(key, "c0ffee")]
    listed = [*own, vault.name(other), vault.name(other, "c0ffee"), vault.name(key, "v").replace("prod", "dev")]
    # When the preamble's key_secrets query runs over them, as the AWS CLI would
    [query] = re.findall(r'key_secrets\(\) \{.*?--query "([^"]+)"', PREAMBLE, re.DOTALL)
    expression = query.replace("$STAGE", "prod").replace("$1", key)
    found = jmespath.search(expression, {"SecretList": [{"Name": name} for name in listed]})
    # Then it lists exactly the key's secrets, the rotated one included
    assert [name for [name] in found] == own


def test_the_runbooks_route_logs_cover_every_function_behind_an_api_key_route():
    from keygate import routes

    [loop] = re.findall(r"for function in (.*?); do", PREAMBLE, re.DOTALL)
    listed = set(loop.replace("\\", " ").split())
    api_key_functions = {route.function_id for route in routes.ROUTES if route.tag in ("gaiaex", "zdex")}
    assert api_key_functions <= listed, sorted(api_key_functions - listed)


def test_the_runbooks_never_read_a_failed_key_secrets_listing_as_no_secrets():
    # An empty answer means "deleted" only if the listing succeeded: every use checks its status
    uses = [(path.name, line.strip()) for path in RUNBOOKS for line in path.read_text().splitlines()
            if "$(key_secrets" in line]
    assert uses
    for name, line in uses:
        assert "||" in line or "&&" in line or line.startswith("if "), (name, line)


# A stand-in for the AWS CLI: list-secrets answers as $LISTING says, delete-secret says what it deleted.
_STAND_IN_AWS = r"""
aws() {
  case "$2" in
    list-secrets)
      case "$LISTING" in
        two) printf '%s\n' "keygate/$STAGE/$KEY" "keygate/$STAGE/$KEY/v2" ;;
        none) ;;
        fails) echo "An error occurred (AccessDeniedException)" >&2; return 254 ;;
        page-then-fails) printf '%s\n' "keygate/$STAGE/$KEY"; echo "An error occurred (ThrottlingException)" >&2
                         return 254 ;;
      esac ;;
    delete-secret) echo "DELETED $4" ;;
  esac
}
"""


def _preamble_function() -> str:
    [function] = re.findall(r"^key_secrets\(\) \{.*?^\}$", PREAMBLE, re.DOTALL | re.MULTILINE)
    return function


def _run_runbook_block(marker: str, document: str, tmp_path, **environment: str) -> str:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    [block] = re.findall(r"<!-- " + re.escape(marker) + r"[^>]*-->\n```sh\n(.*?)\n```", document, re.DOTALL)
    script = _STAND_IN_AWS + _preamble_function() + "\n" + block + "\n"
    ran = subprocess.run([bash, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30,  # noqa: S603  # nosec B603  # a doc's block against a stand-in aws
                         env={"PATH": "/usr/bin:/bin", "STAGE": "prod", "KEY": "kgk_A", **environment}, check=False)
    return ran.stdout


LEAKED_KEY = (template.ROOT / "docs" / "runbooks" / "leaked-key-or-secret.md").read_text()
MASS_REVOKE = (template.ROOT / "docs" / "runbooks" / "mass-revoke.md").read_text()


@pytest.mark.parametrize(("listing", "stage", "deleted", "says"), [
    ("two", "prod", ["keygate/prod/kgk_A", "keygate/prod/kgk_A/v2"], None),
    ("none", "prod", [], "NONE"),
    ("fails", "prod", [], "FAILED"),
    ("page-then-fails", "prod", [], "FAILED"),
    ("two", "", [], "FAILED"),
], ids=["a rotated key", "no secret", "listing refused", "listing cut short", "no stage"])
def test_the_break_glass_deletion_deletes_every_secret_or_says_why_not(tmp_path, listing, stage, deleted, says):
    # When the leaked-key runbook's step 4b runs against an AWS CLI answering the listing so
    output = _run_runbook_block("break-glass secret deletion", LEAKED_KEY, tmp_path, LISTING=listing, STAGE=stage)
    # Then it deletes exactly the secrets listed, and nothing from a listing that failed, saying so
    assert re.findall(r"^DELETED (\S+)$", output, re.MULTILINE) == deleted, output
    assert says is None or says in output, output


def test_the_bulk_deletion_reads_every_key_of_the_file_whatever_its_line_ends(tmp_path):
    # Given keys.txt with CRLF line ends, a blank line and no newline after its last key
    (tmp_path / "keys.txt").write_bytes(b"kgk_A\r\n\r\nkgk_B")
    # When mass-revoke's deletion loop runs
    output = _run_runbook_block("bulk secret deletion", MASS_REVOKE, tmp_path, LISTING="two")
    # Then both keys' secrets are deleted, each by its exact name
    assert re.findall(r"^DELETED (\S+)$", output, re.MULTILINE) == [
        "keygate/prod/kgk_A", "keygate/prod/kgk_A/v2", "keygate/prod/kgk_B", "keygate/prod/kgk_B/v2"], output
