"""IAM's decision for one request, computed from template.yaml's policy statements.

moto does not enforce IAM (nor KMS key policies), so the tests prove the
template's policies by evaluating them here: a function's own statements
(identity policy) and the secrets key's policy, for requests with the resource
and the condition keys AWS would put in the request context (the partition
keys a DynamoDB call touches, the principal's role ARN, what Secrets Manager
tells KMS). The evaluation covers what KeyGate's statements use: Allow and
Deny, Action and Resource with `*` wildcards, and the condition operators
StringEquals, StringLike, ArnEquals, ArnLike and their ForAllValues: /
ForAnyValue: forms, with IAM's rules for a key missing from the request
(a single-valued operator is false, ForAllValues is true, ForAnyValue is false).
An explicit Deny wins over any Allow; no Allow is an implicit deny.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keygate_dev import template

ACCOUNT = "123456789012"
PARTITION = "aws"
Decision = Literal["allowed", "denied", "implicit deny"]


@dataclass(frozen=True)
class Request:
    """One authorization request: an action on a resource (an ARN, or a template resource's logical id
    standing for its ARN), with the request context's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        keys = ", ".join(f"{name}={value}" for name, value in sorted(self.context.items()))
        return f"{self.action} on {self.resource} [{keys}]"


def pseudo_parameters(parameters: Mapping[str, str], region: str, stack_name: str = "keygate-test") -> dict[str, str]:
    return {**template.parameter_defaults(), **parameters, "AWS::Partition": PARTITION, "AWS::Region": region,
            "AWS::AccountId": ACCOUNT, "AWS::StackName": stack_name, "AWS::URLSuffix": "amazonaws.com"}


def resolve(value: Any, parameters: Mapping[str, str]) -> Any:
    """A policy value with its intrinsic functions resolved: `!GetAtt X.Arn` stands for resource X (its
    logical id), `!GetAtt T.StreamArn` for "T/stream" (table T's stream), `!Sub` and `!Ref` of parameters
    are substituted; lists and mappings element by element."""
    if isinstance(value, list):
        return [resolve(item, parameters) for item in value]
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        name, attribute = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else \
            value["Fn::GetAtt"].split(".", 1)
        assert attribute in {"Arn", "StreamArn"}, value
        return name if attribute == "Arn" else f"{name}/stream"
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda found: parameters[found.group(1)], value["Fn::Sub"])
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters[value["Ref"]]
    if isinstance(value, dict):
        return {name: resolve(item, parameters) for name, item in value.items()}
    return value


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    # IAM's wildcards: * any run of characters, ? one; nothing else is special
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


_OPERATORS = {"StringEquals": lambda pattern, value: pattern == value, "StringLike": _like,
              "ArnEquals": lambda pattern, value: pattern == value, "ArnLike": _like}
# Negated operators: true when no pattern matches, and (IAM's rule) when the key is missing.
_NEGATED = {"StringNotLike": _like, "ArnNotLike": _like}


def _condition_holds(operator: str, key: str, patterns: list[str], context: Mapping[str, Any]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if base in _NEGATED and not qualifier:
        present = context.get(key)
        return present is None or not any(_NEGATED[base](pattern, str(present)) for pattern in patterns)
    test = _OPERATORS[base]
    present = context.get(key)
    if qualifier == "ForAllValues":
        values = () if present is None else _listed(present) if not isinstance(present, tuple) else present
        return all(any(test(pattern, value) for pattern in patterns) for value in values)
    if qualifier == "ForAnyValue":
        values = () if present is None else _listed(present) if not isinstance(present, tuple) else present
        return any(test(pattern, value) for value in values for pattern in patterns)
    assert not qualifier, operator
    if present is None:
        return False
    assert isinstance(present, str), f"{key} is single-valued"
    return any(test(pattern, present) for pattern in patterns)


def matches(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether a resolved statement applies to the request (its Effect aside)."""
    if not any(_like(action, request.action) for action in _listed(statement["Action"])):
        return False
    if not any(resource == "*" or _like(resource, request.resource) for resource in _listed(statement["Resource"])):
        return False
    for operator, tests in (statement.get("Condition") or {}).items():
        for key, patterns in tests.items():
            if not _condition_holds(operator, key, _listed(patterns), request.context):
                return False
    return True


def decide(statements: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    applying = [statement["Effect"] for statement in statements if matches(statement, request)]
    if "Deny" in applying:
        return "denied"
    return "allowed" if "Allow" in applying else "implicit deny"


def function_statements(function_id: str, parameters: Mapping[str, str]) -> list[dict[str, Any]]:
    """A function's own policy statements in template.yaml, resolved."""
    properties = template.resources("AWS::Serverless::Function")[function_id]["Properties"]
    return [resolve(statement, parameters) for policy in properties.get("Policies", [])
            for statement in policy["Statement"]]


def role_arn(function_id: str, parameters: Mapping[str, str]) -> str:
    """The ARN of the execution role SAM makes for a function (its RolePath, then a generated name), as
    `aws:PrincipalArn` carries it."""
    properties = template.resources("AWS::Serverless::Function")[function_id]["Properties"]
    path = resolve(properties.get("RolePath", "/"), parameters)
    return f"arn:{PARTITION}:iam::{ACCOUNT}:role{path}{parameters['AWS::StackName']}-{function_id}Role-AbCdEf123456"
