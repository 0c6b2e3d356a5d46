"""The local API Gateway: SAM CLI's own `sam local start-api` emulator, without Docker.

The one emulator of the project: `keygate dev serve` serves it on a port, and
the tests call it in process (`KeyGateLocalApigwService.request`, Flask's test
client), so both see the same routing and the same Gateway Responses.

Routes, Lambda proxy events, authorizer events, identity-source checks and
policy evaluation are SAM CLI's (samcli.local.apigw.LocalApigwService fed by
samcli's template providers), so they match `sam local start-api` exactly.
Two things are replaced, and a few completed where SAM CLI stops short of
API Gateway:

- the Lambda runner is keygate_dev.lambda_runner (handlers in this process,
  each with its CloudFormation environment) instead of Docker containers;
- Gateway Responses: SAM CLI answers authorizer refusals and unknown routes
  with fixed bodies ({"message": ...}, and 500 when a TOKEN authorizer raises
  "Unauthorized"). Here API Gateway's rules apply: a missing identity source or
  an authorizer error "Unauthorized" is UNAUTHORIZED, a Deny or a policy that
  does not cover the method is ACCESS_DENIED (with $context.authorizer.* from
  the authorizer's context; KeyGate's authorizers refuse only this way), any
  other authorizer error is AUTHORIZER_CONFIGURATION_ERROR (AuthorizerConfigurationException, as API
  Gateway answers an authorizer that raises or times out), an authorizer without identity
  sources is invoked for every request,
  an unknown route or method (HEAD and OPTIONS too, which Flask would route to
  GET or answer 405) is MISSING_AUTHENTICATION_TOKEN (403), a failed
  function is a 5XX; each rendered from the GatewayResponses property of the
  template's AWS::Serverless::Api (falling back to DEFAULT_4XX / DEFAULT_5XX,
  then to API Gateway's own bodies);
- repeated slashes in a path: Werkzeug redirects (308) to the merged path; API
  Gateway routes it to the merged path's resource, and so does this gateway;
- a request body that is not UTF-8: SAM CLI decodes text bodies strictly and
  answers 502; API Gateway hands such a body on as text with replacement
  characters (U+FFFD), and the handler decides (400 MALFORMED_JSON here);
- the authorizer result cache: SAM CLI calls the authorizer on every request,
  API Gateway caches a result for ReauthorizeEvery seconds (default 300) per
  identity-source value; a cached policy is evaluated against each request's
  method ARN, as in AWS.

The protected-API example imports KeyGate's exports (Fn::ImportValue), which
are resolved from template.yaml's Outputs: its authorizer is KeyGate's
SignatureAuthorizerFunction, run by the same runner (one warm instance, as
when both APIs call the one deployed function).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Response, g
from flask import request as flask_request
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.provider import Api
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.apigw.authorizers.lambda_authorizer import LambdaAuthorizer
from samcli.local.apigw.event_constructor import _should_base64_encode
from samcli.local.apigw.exceptions import InvalidLambdaAuthorizerResponse, LambdaResponseParseException
from samcli.local.apigw.local_apigw_service import LocalApigwService
from samcli.local.apigw.route import Route
from samcli.yamlhelper import yaml_parse
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_options_header
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wsgi import get_input_stream

from keygate_dev import template
from keygate_dev.lambda_runner import InProcessLambdaRunner

LOG = logging.getLogger("keygate.local")
IAM_AUTHORIZER = "AWS_IAM"
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
DEFAULT_AUTHORIZER_TTL_SECONDS = 300  # API Gateway's default for ReauthorizeEvery

# API Gateway's own status and message for each response type (when the template sets none).
_BUILT_IN: dict[str, tuple[int, str | None]] = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource with an explicit deny"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "THROTTLED": (429, "Too Many Requests"),  # never raised here: no throttling (nor AWS WAF) runs locally
    "AUTHORIZER_FAILURE": (500, None),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "INVALID_SIGNATURE": (403, "The request signature we calculated does not match the signature you provided."),
    "DEFAULT_5XX": (502, "Internal server error"),
}
_ERROR_TYPES = {"UNAUTHORIZED": "UnauthorizedException", "ACCESS_DENIED": "AccessDeniedException",
                "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",  # nosec B105  # error type names
                "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException"}
# $context.a.b, $!context.a.b or the formal ${context.a.b}
_CONTEXT_VARIABLE = re.compile(
    r"\$!?(?:\{context\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\}|context\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*))")


_INVOKE_ACTIONS = frozenset({"execute-api:Invoke", "execute-api:*", "*"})


def _resource_pattern(resource: str) -> re.Pattern[str]:
    """An IAM resource as API Gateway matches it: `*` any run of characters, `?` any one, the rest literally."""
    return re.compile("".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in resource),
                      re.DOTALL)


def policy_allows(response: Mapping[str, Any], method_arn: str) -> bool:
    """Whether an authorizer's IAM policy lets `method_arn` in: an explicit Deny that matches wins, else an Allow
    that matches; nothing matching is a denial."""
    effects = set()
    for statement in response.get("policyDocument", {}).get("Statement", []):
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        if not _INVOKE_ACTIONS & set(actions if isinstance(actions, list) else [actions]):
            continue
        if any(_resource_pattern(resource).fullmatch(method_arn)
               for resource in (resources if isinstance(resources, list) else [resources])):
            effects.add(statement.get("Effect"))
    return "Allow" in effects and "Deny" not in effects


class GatewayError(Exception):
    """A request API Gateway answers itself, with the Gateway Response of `response_type`."""

    def __init__(self, response_type: str, *, message: str | None = None,
                 authorizer_context: Mapping[str, Any] | None = None) -> None:
        super().__init__(response_type)
        self.response_type = response_type
        self.message = message if message is not None else _BUILT_IN.get(response_type, (500, None))[1]
        self.authorizer_context = dict(authorizer_context or {})


# ------------------------------------------------------------ gateway responses
@dataclass
class LocalResponse:
    """What a client of the local gateway receives."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class GatewayResponse:
    status: int | None
    headers: dict[str, str]
    templates: dict[str, str]


def gateway_responses(template_path: Path) -> dict[str, GatewayResponse]:
    """The Gateway Responses of a template's AWS::Serverless::Api (its GatewayResponses property), by type."""
    responses = {}
    for response_type, properties in template.gateway_responses(template_path).items():
        headers = {name: value for name, value in
                   ((properties.get("ResponseParameters") or {}).get("Headers") or {}).items()
                   if isinstance(value, str)}
        status = properties.get("StatusCode")
        responses[response_type] = GatewayResponse(
            status=int(status) if status is not None else None, headers=headers,
            templates=dict(properties.get("ResponseTemplates") or {}))
    return responses


def _render(text: str, context: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found: Any = context
        for part in (match.group(1) or match.group(2)).split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        return "" if found is None else str(found)

    return _CONTEXT_VARIABLE.sub(value, text)


def _header_value(mapping: str, request_headers: Mapping[str, str]) -> str:
    """A ResponseParameters value: a quoted literal or method.request.header.X."""
    if len(mapping) >= 2 and mapping[0] == mapping[-1] == "'":
        return mapping[1:-1]
    if mapping.startswith("method.request.header."):
        return request_headers.get(mapping.removeprefix("method.request.header."), "")
    return ""


# ------------------------------------------------------------- the templates
def _lambda_arn(function_id: str) -> str:
    return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{function_id}"


def _sub(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, replacement in variables.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    return value


def keygate_exports(stack_name: str) -> dict[str, str]:
    """template.yaml's exported outputs that are function ARNs, as CloudFormation would resolve them."""
    functions = set(template.function_ids())
    exports = {}
    for output in (template.load_template().get("Outputs") or {}).values():
        export = output.get("Export")
        value = output.get("Value")
        if not export:
            continue
        name = _sub(export.get("Name"), {"AWS::StackName": stack_name})
        target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
        if isinstance(target, str):
            target = target.split(".")
        if isinstance(name, str) and isinstance(target, list) and target[0] in functions and target[1] == "Arn":
            exports[name] = _lambda_arn(target[0])
    return exports


def _resolve_imports(node: Any, exports: Mapping[str, str], parameters: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::ImportValue"}:
            name = _sub(node["Fn::ImportValue"], parameters)
            if isinstance(name, str) and name in exports:
                return exports[name]
            return node  # not a function export (e.g. the layer): irrelevant to routing
        return {key: _resolve_imports(value, exports, parameters) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_imports(item, exports, parameters) for item in node]
    return node


def example_template(parameters: Mapping[str, str]) -> dict[str, Any]:
    """examples/protected-api/template.yaml with KeyGate's exports resolved."""
    document = yaml_parse(template.EXAMPLE_TEMPLATE_PATH.read_text())
    defaults = {name: str(spec["Default"]) for name, spec in document.get("Parameters", {}).items()
                if "Default" in spec}
    merged = {**defaults, **parameters}
    return _resolve_imports(document, keygate_exports(merged["KeyGateStackName"]), merged)


def _api_of(template_path: Path, parameters: Mapping[str, str],
            template_dictionary: dict[str, Any] | None = None) -> Api:
    # SAM CLI reads the file when given one; a pre-processed template goes as a dictionary only.
    stacks, _ = SamLocalStackProvider.get_stacks(
        template_file=None if template_dictionary is not None else str(template_path),
        parameter_overrides=dict(parameters),
        global_parameter_overrides={"AWS::Region": LOCAL_REGION, "AWS::AccountId": LOCAL_ACCOUNT_ID},
        template_dictionary=template_dictionary)
    return ApiProvider(stacks).api


def _authorizer_ttls(template_path: Path, parameters: Mapping[str, str],
                     document: dict[str, Any] | None = None) -> dict[str, int]:
    """ReauthorizeEvery of every Lambda authorizer of the template's APIs, parameters resolved."""
    document = document or template.load_template(template_path)
    merged = {**template.parameter_defaults(template_path), **parameters}
    ttls = {}
    for resource in document["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Api":
            continue
        for name, spec in ((resource["Properties"].get("Auth") or {}).get("Authorizers") or {}).items():
            value = (spec.get("Identity") or {}).get("ReauthorizeEvery", DEFAULT_AUTHORIZER_TTL_SECONDS)
            if isinstance(value, dict) and "Ref" in value:
                value = merged[value["Ref"]]
            ttls[name] = int(value)
    return ttls


@dataclass
class LocalApiDefinition:
    """Everything the local gateway serves, read from the two templates."""

    api: Api
    template_of_function: dict[str, Path]
    responses: dict[Path, dict[str, GatewayResponse]]
    authorizer_ttls: dict[tuple[Path, str], int]

    @classmethod
    def load(cls, runner: InProcessLambdaRunner, parameters: Mapping[str, str],
             example_parameters: Mapping[str, str] | None = None) -> LocalApiDefinition:
        mismatches = template.registry_mismatches()
        if mismatches:  # a route served as the template says, but checked as the registry says, would drift
            raise ValueError("template.yaml and keygate.routes disagree: " + "; ".join(mismatches))
        main = _api_of(template.TEMPLATE_PATH, parameters)
        apis = [(template.TEMPLATE_PATH, main, None)]
        if template.EXAMPLE_TEMPLATE_PATH.exists():
            stage = {"Stage": parameters.get("Stage", "local"), **(example_parameters or {})}
            document = example_template(stage)
            apis.append((template.EXAMPLE_TEMPLATE_PATH,
                         _api_of(template.EXAMPLE_TEMPLATE_PATH, stage, document), document))
        combined = Api(routes=[route for _, api, _ in apis for route in api.routes])
        combined.stage_name = main.stage_name
        combined.stage_variables = main.stage_variables
        combined.cors = main.cors
        combined.binary_media_types_set = {media_type for _, api, _ in apis for media_type in api.binary_media_types}
        ttls = {}
        for path, _, document in apis:
            stack_parameters = parameters if path == template.TEMPLATE_PATH else {
                "Stage": parameters.get("Stage", "local"), **(example_parameters or {})}
            ttls.update({(path, name): ttl for name, ttl in _authorizer_ttls(path, stack_parameters,
                                                                                document).items()})
        definition = cls(
            api=combined,
            template_of_function={function_id: function.template_path
                                  for function_id, function in runner.functions.items()},
            responses={path: gateway_responses(path) for path, _, _ in apis},
            authorizer_ttls=ttls,
        )
        definition.check_authorizers({path: document or template.load_template(path) for path, _, document in apis})
        return definition

    def check_authorizers(self, documents: Mapping[Path, dict[str, Any]]) -> None:
        """Refuse to serve a route without the authorizer its template gives it (it would be open)."""
        attached = {(route.function_name, route.authorizer_object.authorizer_name)
                    for route in self.api.routes if route.authorizer_object is not None}
        for path, document in documents.items():
            for function_id, expected in configured_authorizers(document).items():
                if expected == IAM_AUTHORIZER:
                    continue  # API Gateway's own SigV4 check, played by KeyGateLocalApigwService (local_iam)
                if expected is not None and (function_id, expected) not in attached:
                    raise ValueError(f"{path.name}: {function_id}'s authorizer {expected!r} cannot be resolved "
                                     "locally (is its function exported by template.yaml?)")


def configured_authorizers(document: Mapping[str, Any]) -> dict[str, str | None]:
    """Each Api-event function's authorizer per the template (None for Authorizer: NONE or no auth)."""
    apis = {name: ((resource["Properties"].get("Auth") or {}).get("DefaultAuthorizer"))
            for name, resource in document["Resources"].items() if resource["Type"] == "AWS::Serverless::Api"}
    found = {}
    for function_id, resource in document["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            api = event["Properties"].get("RestApiId", {})
            api_name = api.get("Ref") if isinstance(api, dict) else api
            chosen = (event["Properties"].get("Auth") or {}).get("Authorizer", apis.get(api_name))
            found[function_id] = None if chosen in (None, "NONE") else chosen
    return found


# ------------------------------------------------------------------- service
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def text_body_as_api_gateway_passes_it(wsgi_app: WsgiApp, binary_media_types: Iterable[str]) -> WsgiApp:
    """Give a text (non-binary) body that is not valid UTF-8 to SAM CLI as API Gateway gives it to Lambda.

    SAM CLI's event constructor decodes such a body strictly and answers 502 when it cannot; API Gateway
    passes it on with each invalid byte sequence replaced by U+FFFD. Binary media types stay untouched
    (SAM CLI base64-encodes them), and so does every body that is valid UTF-8.
    """
    binary_types = list(binary_media_types)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0]
        if not _should_base64_encode(binary_types, mimetype):
            body = get_input_stream(environ).read()
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                body = body.decode("utf-8", errors="replace").encode("utf-8")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input_terminated"] = False
        return wsgi_app(environ, start_response)

    return application


_SLASHES = re.compile(r"/{2,}")


def slashes_merged_as_api_gateway_routes(wsgi_app: WsgiApp) -> WsgiApp:
    """Route a path with repeated slashes (`/v1//wallet/withdrawals`) as API Gateway does, to the resource
    of the merged path, instead of Werkzeug's 308 redirect. The event still reaches the authorizer, which
    signs over the path rebuilt from the matched resource (apigw.request_path)."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return wsgi_app(environ, start_response)

    return application


def _request_id() -> str:
    """This request's id (one per HTTP request, like API Gateway's)."""
    if "keygate_request_id" not in g:
        g.keygate_request_id = str(uuid.uuid4())
    return g.keygate_request_id


@dataclass
class _CachedPolicy:
    expires_at: float
    response: str


@dataclass
class _AuthorizerCache:
    entries: dict[tuple[Any, ...], _CachedPolicy] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[Any, ...]) -> str | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None or entry.expires_at <= time.monotonic():
                self.entries.pop(key, None)
                return None
            return entry.response

    def put(self, key: tuple[Any, ...], response: str, ttl: int) -> None:
        with self.lock:
            self.entries[key] = _CachedPolicy(time.monotonic() + ttl, response)


# The request's header lines as the client sent them, repeats included (HeaderLinesRequestHandler puts them
# in the WSGI environ, which joins a repeated header's values with commas).
HEADER_LINES_ENVIRON_KEY = "keygate.header_lines"


class HeaderLinesRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, keeping the header lines for `headers_as_api_gateway_passes_them`."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        # (werkzeug leaves out names with an underscore; so does the event)
        environ[HEADER_LINES_ENVIRON_KEY] = [(name, value.replace("\r\n", "")) for name, value in self.headers.items()
                                            if "_" not in name]
        return environ


def headers_as_api_gateway_passes_them(event: dict, lines: list[tuple[str, str]] | None) -> None:
    """A header sent more than once: every value in the event's multiValueHeaders and the last in its
    headers, as API Gateway builds a REST proxy or REQUEST authorizer event, not WSGI's one joined value
    (so the signature authorizer's "sent exactly once" check sees the repeat, as deployed)."""
    values_by_name: dict[str, list[str]] = {}
    for name, value in lines or ():
        values_by_name.setdefault(name.lower(), []).append(value)
    multi, single = event.get("multiValueHeaders") or {}, event.get("headers") or {}
    for name in list(multi):
        values = values_by_name.get(name.lower(), [])
        if len(values) > 1 and not name.lower().startswith("x-forwarded-"):  # (the gateway's own, SAM CLI sets)
            multi[name], single[name] = values, values[-1]


class KeyGateLocalApigwService(LocalApigwService):
    """SAM CLI's LocalApigwService with API Gateway's Gateway Responses and authorizer cache."""

    def __init__(self, definition: LocalApiDefinition, runner: InProcessLambdaRunner, *, port: int,
                 host: str = "127.0.0.1", access_log: bool = True) -> None:
        super().__init__(definition.api, runner, port=port, host=host)  # type: ignore[arg-type]
        self.definition = definition
        self.runner = runner
        self.access_log = access_log
        self._authorizer_cache = _AuthorizerCache()
        self._iam_functions = {function_id for path in {template.TEMPLATE_PATH}
                               for function_id, chosen in configured_authorizers(template.load_template(path)).items()
                               if chosen == IAM_AUTHORIZER}

    @property
    def app(self) -> Any:
        return self._app

    # -------------------------------------------------------- in this process
    def request(self, method: str, path: str, *, query: str = "", headers: Mapping[str, str] | None = None,
                body: str | bytes | None = None, source_ip: str = "203.0.113.10") -> LocalResponse:
        """One request through the gateway without a socket (Flask's test client), as a client would send it."""
        answer = self._app.test_client().open(path, method=method, query_string=query, headers=dict(headers or {}),
                                              data=body, environ_base={"REMOTE_ADDR": source_ip})
        return LocalResponse(answer.status_code, dict(answer.headers), answer.get_data(as_text=True))

    def resource_of(self, method: str, path: str) -> str | None:
        """The resource (template path, e.g. /v1/trade/api-keys/{api_key}) that serves a request, if any."""
        adapter = self._app.url_map.bind("localhost")
        try:
            endpoint, _ = adapter.match(path, method=method)
        except HTTPException:
            return None
        route = self._dict_of_routes.get(self._route_key(method, endpoint))
        return None if route is None else str(route.path)

    def create(self) -> None:
        super().create()
        as_api_gateway = text_body_as_api_gateway_passes_it(self._app.wsgi_app, self.api.binary_media_types)
        self._app.wsgi_app = slashes_merged_as_api_gateway_routes(as_api_gateway)  # type: ignore[method-assign]
        self._app.register_error_handler(GatewayError, self._gateway_response)
        if self.access_log:
            self._app.after_request(self._log_request)

    def _construct_error_handling(self) -> None:
        def missing_route(_: Exception) -> Response:
            return self._gateway_response(GatewayError("MISSING_AUTHENTICATION_TOKEN"))

        def internal_error(error: Exception) -> Response:
            LOG.error("local gateway failure: %s", error)
            return self._gateway_response(GatewayError("DEFAULT_5XX"))

        self._app.register_error_handler(404, missing_route)
        self._app.register_error_handler(405, missing_route)
        self._app.register_error_handler(500, internal_error)

    # ------------------------------------------------------------------ events
    def _generate_lambda_event(self, flask_request: Any, route: Route, method: str, endpoint: str) -> dict:
        # SAM CLI's RequestContext takes its requestId from a default argument, evaluated once: every
        # request would share it. API Gateway gives each request its own, seen by the authorizer, the
        # function and $context.requestId in a Gateway Response alike.
        event = super()._generate_lambda_event(flask_request, route, method, endpoint)
        event.setdefault("requestContext", {})["requestId"] = _request_id()
        headers_as_api_gateway_passes_them(event, flask_request.environ.get(HEADER_LINES_ENVIRON_KEY))
        if route.function_name in self._iam_functions:
            self._check_sigv4(flask_request, event)
        return event

    def _check_sigv4(self, request: Any, event: dict) -> None:
        """An AWS_IAM route: API Gateway's SigV4 check (local_iam), the caller's identity into the context."""
        from keygate_dev import local_iam

        headers = dict(request.headers.items())
        if not local_iam.is_signed(headers):
            raise GatewayError("MISSING_AUTHENTICATION_TOKEN")
        caller = local_iam.caller(request.method, request.url, headers, request.get_data())
        if caller is None:
            raise GatewayError("INVALID_SIGNATURE")
        event["requestContext"].setdefault("identity", {}).update(
            {"userArn": caller, "caller": caller.rsplit("/", 1)[-1], "accountId": LOCAL_ACCOUNT_ID})

    # ------------------------------------------------------------ authorizers
    def _valid_identity_sources(self, request: Any, route: Route) -> bool:
        # API Gateway answers a missing (or blank) identity source with UNAUTHORIZED, without calling the authorizer.
        authorizer = route.authorizer_object
        present = super()._valid_identity_sources(request, route) and all(
            (source.find_identity_value(headers=request.headers, querystring=request.query_string.decode(),
                                        context={}, stageVariables=self.api.stage_variables) or "").strip()
            for source in getattr(authorizer, "identity_sources", []))
        if not present:
            raise GatewayError("UNAUTHORIZED")
        return True

    def _invoke_parse_lambda_authorizer(self, lambda_authorizer: LambdaAuthorizer, auth_lambda_event: dict,
                                        route_lambda_event: dict, route: Route) -> None:
        template_path = self.definition.template_of_function.get(route.function_name or "", template.TEMPLATE_PATH)
        ttl = self.definition.authorizer_ttls.get((template_path, lambda_authorizer.authorizer_name),
                                                  DEFAULT_AUTHORIZER_TTL_SECONDS)
        identity = tuple(source.find_identity_value(
            headers=flask_request.headers, querystring=flask_request.query_string.decode(), context={},
            stageVariables=self.api.stage_variables) for source in lambda_authorizer.identity_sources)
        cache_key = (str(template_path), lambda_authorizer.authorizer_name, identity)
        response = self._authorizer_cache.get(cache_key) if ttl > 0 else None
        if response is None:
            outcome = self.runner.run(lambda_authorizer.lambda_name, auth_lambda_event)
            if outcome.error is not None:
                if outcome.error.get("errorMessage") == "Unauthorized":
                    raise GatewayError("UNAUTHORIZED")
                LOG.error("authorizer %s failed: %s: %s", lambda_authorizer.authorizer_name,
                          outcome.error.get("errorType"), outcome.error.get("errorMessage"))
                raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
            response = outcome.output()
            if ttl > 0:
                self._authorizer_cache.put(cache_key, response, ttl)
        method_arn = self._create_method_arn(flask_request, route.event_type)
        # SAM CLI's own check reads each Resource as a regular expression: a path with `+`, `$` or `(` in it
        # was refused or crashed. API Gateway matches it as IAM does (policy_allows).
        lambda_authorizer._is_resource_authorized = policy_allows  # type: ignore[method-assign]
        try:
            allowed = lambda_authorizer.is_valid_response(response, method_arn)
            context = lambda_authorizer.get_context(response)
        except InvalidLambdaAuthorizerResponse as error:
            LOG.error("authorizer %s answered an invalid policy: %s", lambda_authorizer.authorizer_name, error)
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR") from None
        if not allowed:
            raise GatewayError("ACCESS_DENIED", authorizer_context=context)
        route_lambda_event.setdefault("requestContext", {})["authorizer"] = context

    # --------------------------------------------------------------- functions
    def _invoke_lambda_function(self, lambda_function_name: str, event: dict,
                                tenant_id: str | None = None) -> str:
        outcome = self.runner.run(lambda_function_name, event)
        if outcome.error is not None:
            LOG.error("function %s failed: %s: %s", lambda_function_name, outcome.error.get("errorType"),
                      outcome.error.get("errorMessage"))
            raise GatewayError("DEFAULT_5XX")
        return outcome.output()

    @staticmethod
    def _parse_v1_payload_format_lambda_output(lambda_output: str, binary_types: Any, flask_request: Any,
                                               event_type: str) -> Any:
        try:
            return LocalApigwService._parse_v1_payload_format_lambda_output(
                lambda_output, binary_types, flask_request, event_type)
        except LambdaResponseParseException as error:  # API Gateway: "Malformed Lambda proxy response", 502
            LOG.error("malformed Lambda proxy response: %s", error)
            raise GatewayError("DEFAULT_5XX") from None

    # ---------------------------------------------------------------- answers
    def _get_current_route(self, flask_request: Any) -> Route:
        # Flask serves HEAD with GET (and SAM CLI knows no route for it): API Gateway answers a method
        # no route declares, HEAD and OPTIONS included, with MISSING_AUTHENTICATION_TOKEN.
        try:
            return super()._get_current_route(flask_request)
        except KeyError:
            raise GatewayError("MISSING_AUTHENTICATION_TOKEN") from None

    def _responses_for_request(self) -> dict[str, GatewayResponse]:
        route = None
        with suppress(KeyError, RuntimeError, GatewayError):
            route = self._get_current_route(flask_request)
        path = self.definition.template_of_function.get(getattr(route, "function_name", "") or "",
                                                        template.TEMPLATE_PATH)
        return self.definition.responses.get(path, {})

    def _gateway_response(self, error: GatewayError) -> Response:
        built_in_status, _ = _BUILT_IN.get(error.response_type, (500, None))
        responses = self._responses_for_request()
        family = "DEFAULT_4XX" if built_in_status < 500 else "DEFAULT_5XX"
        specific = responses.get(error.response_type)
        fallback = responses.get(family)
        chosen = specific or fallback
        status = (specific.status if specific and specific.status else None) or \
                 (fallback.status if fallback and fallback.status else None) or built_in_status
        request_id = _request_id()
        context = {
            "requestId": request_id, "stage": self.api.stage_name, "httpMethod": flask_request.method,
            "path": flask_request.path, "resourcePath": flask_request.path,
            "domainName": flask_request.host, "identity": {"sourceIp": flask_request.remote_addr},
            "authorizer": error.authorizer_context,
            "error": {"message": error.message, "messageString": json.dumps(error.message),
                      "responseType": error.response_type},
        }
        if chosen and chosen.templates:
            body = _render(chosen.templates.get("application/json") or next(iter(chosen.templates.values())),
                           context)
        else:
            body = json.dumps({"message": error.message})
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id}
        if error.response_type in _ERROR_TYPES:
            headers["x-amzn-ErrorType"] = _ERROR_TYPES[error.response_type]
        for name, mapping in (chosen.headers if chosen else {}).items():
            headers[name] = _header_value(mapping, flask_request.headers)
        return self.service_response(body, headers, status)  # type: ignore[arg-type]

    def _log_request(self, response: Response) -> Response:
        print(f"{flask_request.method} {flask_request.full_path.rstrip('?')} -> {response.status_code}",
              flush=True)
        return response
