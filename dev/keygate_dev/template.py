"""template.yaml as the single source of truth for tests and local mode."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
# The downstream example that attaches KeyGate's exported SignatureAuthorizer;
# every function below takes `template_path` to read it the same way.
EXAMPLE_TEMPLATE_PATH = ROOT / "examples" / "protected-api" / "template.yaml"
# Attributes of AWS::DynamoDB::Table that create_table understands; the rest
# (TTL, PITR, deletion protection) are separate API calls or deployment-only.
_CREATE_TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
                            "LocalSecondaryIndexes")


@lru_cache(maxsize=4)
def load_template(template_path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml_parse(Path(template_path).read_text())


def resources(resource_type: str, template_path: Path = TEMPLATE_PATH) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in load_template(template_path)["Resources"].items()
            if resource["Type"] == resource_type}


def gateway_responses(template_path: Path = TEMPLATE_PATH) -> dict[str, dict[str, Any]]:
    """The `GatewayResponses` property of the template's one AWS::Serverless::Api, by response type.

    That property, not AWS::ApiGateway::GatewayResponse resources, is where a template declares them: SAM
    writes it into the OpenAPI body it hashes into the stage's Deployment, so a change redeploys the stage.
    """
    apis = resources("AWS::Serverless::Api", template_path)
    if len(apis) != 1:
        raise ValueError(f"{Path(template_path).name}: expected one AWS::Serverless::Api, found {sorted(apis)}")
    [api] = apis.values()
    return dict(api["Properties"].get("GatewayResponses") or {})


def parameter_defaults(template_path: Path = TEMPLATE_PATH) -> dict[str, str]:
    return {name: str(spec["Default"]) for name, spec in load_template(template_path)["Parameters"].items()
            if "Default" in spec}


def parameter_problems(values: dict[str, str], template_path: Path = TEMPLATE_PATH) -> list[str]:
    """What CloudFormation would refuse in these parameter values: unknown names, and values outside a
    parameter's AllowedValues, AllowedPattern, MinValue or MaxValue."""
    declared = load_template(template_path)["Parameters"]
    problems = []
    for name, value in values.items():
        spec = declared.get(name)
        if spec is None:
            problems.append(f"{name} is not a parameter of {Path(template_path).name} "
                            f"(known: {', '.join(sorted(declared))})")
            continue
        allowed = [str(option) for option in spec.get("AllowedValues", [])]
        if allowed and value not in allowed:
            problems.append(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            problems.append(f"{name}={value!r} does not match {pattern}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"{name} must be a number, not {value!r}")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]) or \
                    "MaxValue" in spec and number > float(spec["MaxValue"]):
                problems.append(f"{name} must be from {spec.get('MinValue')} to {spec.get('MaxValue')}, not {value}")
    return problems


def create_tables(dynamodb: Any, table_names: Mapping[str, str], *, existing: Collection[str] = ()) -> None:
    """Create every AWS::DynamoDB::Table of the template under the given names (by logical id), except
    those named in `existing`."""
    for logical_id, resource in resources("AWS::DynamoDB::Table").items():
        properties = resource["Properties"]
        name = table_names[logical_id]
        if name in existing:
            continue
        arguments = {key: properties[key] for key in _CREATE_TABLE_PROPERTIES if key in properties}
        if "SSESpecification" in properties:  # CloudFormation's SSEEnabled is the API's Enabled
            arguments["SSESpecification"] = {"Enabled": bool(properties["SSESpecification"]["SSEEnabled"])}
        if "StreamSpecification" in properties:  # the API's StreamEnabled is implied in CloudFormation
            arguments["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        dynamodb.create_table(TableName=name, **arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


_NO_VALUE = object()  # AWS::NoValue: CloudFormation leaves the property out


def _condition(name: str, template: dict[str, Any], parameters: dict[str, str]) -> bool:
    return _evaluate(template.get("Conditions", {})[name], template, parameters)


def _evaluate(expression: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """The condition functions CloudFormation evaluates before deploying (Equals, Not, And, Or, Condition)."""
    if isinstance(expression, dict) and len(expression) == 1:
        (function, argument), = expression.items()
        if function == "Fn::Equals":
            left, right = (_evaluate(item, template, parameters) for item in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not _evaluate(argument[0], template, parameters)
        if function == "Fn::And":
            return all(_evaluate(item, template, parameters) for item in argument)
        if function == "Fn::Or":
            return any(_evaluate(item, template, parameters) for item in argument)
        if function == "Condition":
            return _condition(argument, template, parameters)
        if function == "Ref":
            return parameters[argument]
    return expression


def _resolve(value: Any, parameters: dict[str, str], references: Mapping[str, str],
             template: dict[str, Any] | None = None) -> Any:
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return _NO_VALUE
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in references:
            return references[name]
        return parameters[name]
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, replacement in {**parameters, **references}.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    if isinstance(value, dict) and "Fn::If" in value and template is not None:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if _condition(condition, template, parameters) else when_false
        return _resolve(chosen, parameters, references, template)
    raise ValueError(f"cannot resolve {value!r} outside CloudFormation")


def function_environment(function_id: str, parameters: dict[str, str], references: Mapping[str, str],
                         template_path: Path = TEMPLATE_PATH) -> dict[str, str]:
    """The environment CloudFormation would give a function: Globals, then its own."""
    template = load_template(template_path)
    variables = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    own = template["Resources"][function_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    merged_parameters = {**parameter_defaults(template_path), **parameters}
    resolved = {name: _resolve(value, merged_parameters, references, template) for name, value in variables.items()}
    return {name: value for name, value in resolved.items() if value is not _NO_VALUE}


def shared_environment(parameters: dict[str, str], references: Mapping[str, str],
                       template_path: Path = TEMPLATE_PATH) -> dict[str, str]:
    """Every variable any function of the template gets (Globals, then each function's own), for a process
    that plays all of them at once (tests, benchmarks). A name two functions set differently is an error."""
    merged: dict[str, str] = {}
    for function_id in function_ids(template_path):
        for name, value in function_environment(function_id, parameters, references, template_path).items():
            if merged.setdefault(name, value) != value:
                raise ValueError(f"{name} differs between functions; one environment cannot serve them all")
    return merged


def function_ids(template_path: Path = TEMPLATE_PATH) -> list[str]:
    return sorted(resources("AWS::Serverless::Function", template_path))


def load_handler(function_id: str, template_path: Path = TEMPLATE_PATH) -> Any:
    """Import a function's handler from its CodeUri, as Lambda would (module per function)."""
    template = load_template(template_path)
    properties = template["Resources"][function_id]["Properties"]
    handler = properties.get("Handler") or template["Globals"]["Function"]["Handler"]
    module_name, _, attribute = handler.rpartition(".")
    path = Path(template_path).parent / properties["CodeUri"] / f"{module_name.replace('.', '/')}.py"
    # The main template's modules keep their historical names (tests use module_for).
    stack = "" if Path(template_path) == TEMPLATE_PATH else f"{Path(template_path).parent.name.replace('-', '_')}_"
    unique = f"keygate_function_{stack}{function_id}"
    module = sys.modules.get(unique)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {function_id}'s handler from {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    return getattr(module, attribute)


def api_routes() -> list[tuple[str, str, str]]:
    """(method, path, function id) for every Api event in the template."""
    return sorted((method, path, function_id) for method, path, function_id, _ in routes_of(load_template()))


def routes_of(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, function id, authorizer) for every Api event of a template document; the authorizer
    is the event's own `Auth.Authorizer`, else its API's DefaultAuthorizer ("NONE" for none)."""
    defaults = {name: (resource["Properties"].get("Auth") or {}).get("DefaultAuthorizer", "NONE")
                for name, resource in document["Resources"].items() if resource["Type"] == "AWS::Serverless::Api"}
    found = []
    for function_id, resource in document["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            properties = event["Properties"]
            api = properties.get("RestApiId", {})
            authorizer = (properties.get("Auth") or {}).get("Authorizer") or \
                defaults.get(api.get("Ref") if isinstance(api, dict) else api, "NONE")
            found.append((properties["Method"].upper(), properties["Path"], function_id, authorizer))
    return sorted(found)


def registry_mismatches(document: dict[str, Any] | None = None) -> list[str]:
    """Where a template (default: template.yaml) and the route registry (keygate.routes) disagree."""
    from keygate.routes import ROUTES

    declared = {(route.method, route.path, route.function_id, route.auth.value) for route in ROUTES}
    templated = set(routes_of(document if document is not None else load_template()))
    return ([f"template.yaml has {route} but keygate.routes does not" for route in sorted(templated - declared)]
            + [f"keygate.routes has {route} but template.yaml does not" for route in sorted(declared - templated)])


def module_for(function_id: str) -> ModuleType:
    load_handler(function_id)
    return sys.modules[f"keygate_function_{function_id}"]
