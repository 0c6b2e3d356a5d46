"""template.yaml as the single source of truth for tests and local mode."""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
# Attributes of AWS::DynamoDB::Table that create_table understands; the rest
# (TTL, PITR, deletion protection) are separate API calls or deployment-only.
_CREATE_TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
                            "LocalSecondaryIndexes")


@lru_cache(maxsize=1)
def load_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text())


def resources(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in load_template()["Resources"].items()
            if resource["Type"] == resource_type}


def parameter_defaults() -> dict[str, str]:
    return {name: str(spec["Default"]) for name, spec in load_template()["Parameters"].items()
            if "Default" in spec}


def create_tables(dynamodb: Any, table_names: dict[str, str]) -> None:
    """Create every AWS::DynamoDB::Table of the template under the given names."""
    for logical_id, resource in resources("AWS::DynamoDB::Table").items():
        properties = resource["Properties"]
        name = table_names[logical_id]
        arguments = {key: properties[key] for key in _CREATE_TABLE_PROPERTIES if key in properties}
        if "SSESpecification" in properties:  # CloudFormation's SSEEnabled is the API's Enabled
            arguments["SSESpecification"] = {"Enabled": bool(properties["SSESpecification"]["SSEEnabled"])}
        dynamodb.create_table(TableName=name, **arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


def _resolve(value: Any, parameters: dict[str, str], references: dict[str, str]) -> str:
    if isinstance(value, (str, int, float)):
        return str(value)
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
    raise ValueError(f"cannot resolve {value!r} outside CloudFormation")


def function_environment(function_id: str, parameters: dict[str, str], references: dict[str, str]) -> dict[str, str]:
    """The environment CloudFormation would give a function: Globals, then its own."""
    template = load_template()
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][function_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    merged_parameters = {**parameter_defaults(), **parameters}
    return {name: _resolve(value, merged_parameters, references) for name, value in variables.items()}


def function_ids() -> list[str]:
    return sorted(resources("AWS::Serverless::Function"))


def load_handler(function_id: str) -> Any:
    """Import a function's handler from its CodeUri, as Lambda would (module per function)."""
    template = load_template()
    properties = template["Resources"][function_id]["Properties"]
    handler = properties.get("Handler") or template["Globals"]["Function"]["Handler"]
    module_name, _, attribute = handler.rpartition(".")
    path = ROOT / properties["CodeUri"] / f"{module_name.replace('.', '/')}.py"
    unique = f"keygate_function_{function_id}"
    module = sys.modules.get(unique)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    return getattr(module, attribute)


def api_routes() -> list[tuple[str, str, str]]:
    """(method, path, function id) for every Api event in the template."""
    routes = []
    for function_id, resource in resources("AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                routes.append((event["Properties"]["Method"].upper(), event["Properties"]["Path"], function_id))
    return sorted(routes)


def module_for(function_id: str) -> ModuleType:
    load_handler(function_id)
    return sys.modules[f"keygate_function_{function_id}"]
