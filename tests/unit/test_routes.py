"""The route registry (keygate.routes) and template.yaml say the same thing about every route."""

from __future__ import annotations

import copy

import pytest

from keygate import routes
from keygate.errors import ErrorCode
from keygate.routing import Auth
from keygate_dev import events, template

BY_FUNCTION = {route.function_id: route for route in routes.ROUTES}  # (the refusals match across profiles)


def test_the_registry_and_template_yaml_declare_the_same_routes_with_the_same_authorizers():
    # Given every route the registry declares and every Api event of template.yaml
    # When they are compared (method, path, function, authorizer)
    # Then nothing differs
    assert template.registry_mismatches() == []


def _edited(edit: str) -> dict:
    document = copy.deepcopy(template.load_template())
    event = document["Resources"]["UpdateApiKeyFunction"]["Properties"]["Events"]["Api"]["Properties"]
    if edit == "path":
        event["Path"] = "/v1/trade/api-keys/{api_key}/x"
    elif edit == "method":
        event["Method"] = "put"
    elif edit == "authorizer":
        event["Auth"] = {"Authorizer": "NONE"}
    elif edit == "another function":
        document["Resources"]["UpdateApiKeyFunction2"] = document["Resources"].pop("UpdateApiKeyFunction")
    elif edit == "a route not declared":
        extra = copy.deepcopy(document["Resources"]["ListApiKeysFunction"])
        extra["Properties"]["Events"]["Api"]["Properties"]["Path"] = "/v1/trade/api-keys/export"
        document["Resources"]["ExportApiKeysFunction"] = extra
    return document


@pytest.mark.parametrize("edit", ["path", "method", "authorizer", "another function", "a route not declared"])
def test_a_template_that_disagrees_with_the_registry_is_caught(edit):
    # Given template.yaml with one route changed the way a careless edit would change it
    document = _edited(edit)
    # When it is compared with the registry
    mismatches = template.registry_mismatches(document)
    # Then the difference is reported
    assert mismatches, edit


@pytest.mark.parametrize("route", routes.ROUTES, ids=lambda route: route.function_id)
def test_each_function_serves_the_route_declared_for_it(route):
    # Given the handler template.yaml names for the route's function
    handler = template.load_handler(route.function_id)
    # Then it was built from that very declaration
    assert route in handler.routes


def test_every_route_has_its_own_operation_and_path_and_a_function_serves_one_operation():
    assert len({route.operation_id for route in routes.ROUTES}) == len(routes.ROUTES)
    # (a function serves the same operation in each profile: the same step-up action, the same auth)
    for function_id in {route.function_id for route in routes.ROUTES}:
        served = [route for route in routes.ROUTES if route.function_id == function_id]
        assert len({(route.step_up, route.auth) for route in served}) == 1, function_id
    assert len({(route.method, route.path) for route in routes.ROUTES}) == len(routes.ROUTES)


REFUSING_EVENTS = [path for path in events.event_files()
                   if events.expectation(path).function in BY_FUNCTION and events.expectation(path).error_code]


@pytest.mark.parametrize("event_path", REFUSING_EVENTS, ids=lambda path: path.name)
def test_every_sample_events_refusal_is_one_its_route_declares(event_path):
    # Given a sample event of a route and the refusal its sidecar expects
    plan = events.expectation(event_path)
    route = BY_FUNCTION[plan.function]
    code = ErrorCode[plan.error_code]
    # Then the code is one the route declares (or its session authorizer's), with the status the code carries
    authorizer_codes = {Auth.SESSION: {ErrorCode.UNAUTHORIZED}}.get(route.auth, set())
    assert code in {*route.refusals, *authorizer_codes}, (route.function_id, code)
    assert code.status == plan.status
