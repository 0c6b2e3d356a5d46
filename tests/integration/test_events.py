"""Every sample event in events/ runs through its handler, without Docker, and gives its sidecar's status."""

import json
from pathlib import Path

import pytest

from keygate import routes
from keygate_dev import events, template
from keygate_dev.events import EventRun, Seed, SeedKey, expectation, response_fields, response_status, run_event
from tests.support.apigw_events import resource_parameters
from tests.support.errors import error_of

EVENT_FILES = events.event_files()


def test_there_are_sample_events():
    assert len(EVENT_FILES) >= len(template.function_ids())


def test_every_function_of_the_template_has_an_event():
    # Given the functions that template.yaml deploys and the functions the sidecars name
    covered = {expectation(path).function for path in EVENT_FILES}
    # Then each deployed function has at least one sample event, and no sidecar names a missing one
    assert set(template.function_ids()) - covered == set()
    assert covered - set(template.function_ids()) == set()


def test_every_sidecar_belongs_to_an_event():
    sidecars = set(events.EVENTS_DIR.glob("*" + events.SIDECAR_SUFFIX))
    assert sidecars == {events.sidecar_path(path) for path in EVENT_FILES}


@pytest.mark.parametrize("event_path", EVENT_FILES, ids=lambda path: path.name)
def test_event_matches_its_name_and_route(event_path: Path, client):
    # Given an event and its sidecar
    plan = expectation(event_path)
    event = json.loads(event_path.read_text())
    # Then a status in the file name agrees with the sidecar
    assert events.status_in_name(event_path) in (None, plan.status)
    # And an API Gateway proxy event is routed by template.yaml to the function the sidecar names
    if "httpMethod" in event:
        resource = client.gateway.resource_of(event["httpMethod"], event["path"])
        route = routes.route_of(event["httpMethod"], resource)
        # (a REQUEST authorizer event carries the route it guards, not its own function)
        assert route.function_id == plan.function or (
            event.get("type") == "REQUEST" and plan.function in events.authorizer_functions())
        assert event["resource"] == event["requestContext"]["resourcePath"] == route.path
        assert (event["pathParameters"] or {}) == resource_parameters(route.path, event["path"])
        assert event["requestContext"]["identity"]["sourceIp"]


@pytest.mark.parametrize("event_path", EVENT_FILES, ids=lambda path: path.name)
def test_event_gives_the_status_its_sidecar_says(aws, identity, event_path: Path):
    # Given the state the sidecar seeds
    plan = expectation(event_path)
    # When the event runs through its function's handler
    result = run_event(plan.function, event_path, identity)
    # Then the status, the error code and the listed response fields are the sidecar's
    assert response_status(plan.function, result) == plan.status, result
    fields = response_fields(result)
    if "statusCode" in result and plan.status >= 400:
        error_of(fields)
    if plan.error_code is not None:
        assert fields["error"]["code"] == plan.error_code, fields
    for name, value in plan.response.items():
        assert fields[name] == value, (name, fields)
    # And no response carries a secret but the create's or the rotation's (each its new one)
    assert "kgs_" not in json.dumps(result) or plan.function in {"CreateApiKeyFunction", "RotateApiKeyFunction"}


def test_a_rerun_against_the_same_store_gives_the_same_answer(aws, identity):
    # Given an event that creates a key for a seeded user
    event_path = events.EVENTS_DIR / "create_api_key.200.json"
    # When it runs twice against the same store
    first, second = (run_event("CreateApiKeyFunction", event_path, identity) for _ in range(2))
    # Then each run had its own user and both created a key
    assert first["statusCode"] == second["statusCode"] == 200
    assert json.loads(first["body"])["api_key"] != json.loads(second["body"])["api_key"]


def test_placeholders_take_one_value_per_run(aws, identity):
    # Given a run with a seeded key
    run = EventRun(identity, run_id="r1")
    run.seed(Seed(accounts={"alice": {}}, keys={"bot": SeedKey(owner="alice")}))
    run.event_user = run.user("alice")
    # When the same step-up placeholder appears twice, next to the other kinds
    filled = run.fill({"a": "{{step_up:api_keys:update}}", "b": ["{{step_up:api_keys:update}}"],
                       "user": "{{user:alice}}", "key": "/keys/{{key:bot}}", "n": 3})
    # Then both places get one token, and users and keys resolve for this run
    assert filled["a"] == filled["b"][0] and filled["a"].count(".") == 2
    assert filled["user"] == "alice-r1"
    assert filled["key"] == f"/keys/{run.keys['bot'].api_key}"
    assert filled["n"] == 3


@pytest.mark.parametrize("text", ["{{key:missing}}", "{{nonsense:x}}", "{{step_up:api_keys:delete}}"])
def test_unknown_placeholders_are_reported(aws, identity, text):
    run = EventRun(identity, run_id="r1", event_user="alice-r1")
    with pytest.raises(ValueError):
        run.fill(text)


def test_preparers_named_by_a_sidecar_run_after_the_placeholders(aws, identity, tmp_path, monkeypatch):
    # Given a registered preparer and an event whose sidecar names it
    seen = {}

    def stamp(event, run, header):
        seen["user"] = event["requestContext"]["authorizer"]["user_id"]
        return {**event, "headers": {**event["headers"], header: run.keys["bot"].api_key}}

    monkeypatch.setitem(events._PREPARERS, "stamp", stamp)
    source = json.loads((events.EVENTS_DIR / "list_api_keys.200.json").read_text())
    event_path = tmp_path / "list.json"
    event_path.write_text(json.dumps(source))
    events.sidecar_path(event_path).write_text(json.dumps({
        "function": "ListApiKeysFunction", "status": 200,
        "seed": {"accounts": {"alice": {}}, "keys": {"bot": {"owner": "alice"}}},
        "prepare": [{"use": "stamp", "header": "X-Seen"}]}))
    # When it runs
    result = run_event("ListApiKeysFunction", event_path, identity)
    # Then the preparer saw the filled event and the handler got its output
    assert result["statusCode"] == 200
    assert seen["user"].startswith("alice-") and "{{" not in seen["user"]


def test_a_sidecar_with_an_unknown_field_is_refused(tmp_path):
    event_path = tmp_path / "x.json"
    event_path.write_text("{}")
    events.sidecar_path(event_path).write_text(json.dumps({"function": "X", "status": 200, "stauts": 201}))
    with pytest.raises(ValueError):
        expectation(event_path)


@pytest.mark.parametrize(("result", "status"), [
    ({"statusCode": 201, "body": "{}"}, 201),
    ({"principalId": "a", "policyDocument": {"Statement": [{"Effect": "Allow"}]}}, 200),
    ({"principalId": "a", "policyDocument": {"Statement": [{"Effect": "Deny"}]}}, 401),
    ({"errorType": "AuthorizerDenied", "errorMessage": "Unauthorized"}, 401),
    ({"errorType": "PyJWKClientConnectionError", "errorMessage": "Fail to fetch data"}, 503),
])
def test_authorizer_results_map_to_what_api_gateway_answers(result, status):
    assert response_status("SessionAuthorizerFunction", result) == status


def test_a_failing_function_without_http_face_is_500():
    assert response_status("SecretJanitorFunction", {"errorType": "KeyError", "errorMessage": "x"}) == 500
    assert response_status("SecretJanitorFunction", {"deleted": [], "kept": [], "failed": []}) == 200
