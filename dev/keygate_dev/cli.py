"""`keygate dev ...`: the local stage's command line (installed as .venv/bin/keygate).

    keygate dev serve   [--port N] [--parameter-overrides K=V ...] [--env-vars env.json]
                        [--aws-port N] [--jwks-port N]           fixed ports, for `sam local invoke`
    keygate dev token   --user alice [--lifetime SECONDS]        prints a session JWT
    keygate dev step-up --user alice --action api_keys:create    prints a passkey step-up token for one change:
                        [--api-key K | --id ID | --passkey-id P] the target, [--profile zdex], and
                        [--request JSON]                         the exact body the mutation will send
    keygate dev onboard --user alice [--no-trade]                onboarding (+ trading handshake) state
    keygate dev events  [--type ApiKeyCreated] [--expiry-now]    the lifecycle events KeyGate published
    keygate admin revoke --user alice [--api-key K] --reason R [--api-url URL]   the security team's revoke
                                                                 (SigV4; default: the local server)
    keygate dev invoke  <FunctionLogicalId> events/<file>.json   one function, one event, in-process
                        [more event files]                       (then a JSON object: file -> result)

Session tokens are signed with the local stage's keys (in the state directory),
which only the local server trusts; nothing here exists in a deployed stage (dev/
is in no CodeUri). On the built-in step-up (StepUpMode builtin, the local
default) `step-up` performs the real passkey ceremony against the running server
with a software authenticator kept in the state directory (registered on first
use); on an external one it mints the token as that issuer would. Tokens go
alone to stdout, so scripts can capture them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keygate.stepup import Action
from keygate_dev import state, template
from keygate_dev.emulation import EmulationError
from keygate_dev.server import DEFAULT_PORT

STEP_UP_ACTIONS = tuple(action.value for action in Action)


class CliError(Exception):
    """Shown as one line on stderr; the command exits 1."""


# ---------------------------------------------------------------- arguments
def _parameter_overrides(values: Sequence[str]) -> dict[str, str]:
    """`K=V` items, as `sam deploy --parameter-overrides` takes them (one argument may hold several)."""
    overrides = {}
    for item in (part for value in values for part in value.split()):
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise CliError(f"--parameter-overrides takes Name=Value items, not {item!r}")
        overrides[name.removeprefix("ParameterKey=")] = value
    problems = template.parameter_problems(overrides)
    if problems:
        raise CliError(f"--parameter-overrides: {problems[0]}")
    return overrides


def _env_vars(path: str | None) -> dict[str, dict[str, str]]:
    """A `sam local --env-vars` file: {"FunctionLogicalId" | "Parameters": {"VARIABLE": "value"}}."""
    if not path:
        return {}
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise CliError(f"--env-vars {path}: {error}") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise CliError(f"--env-vars {path}: expected {{\"FunctionLogicalId\": {{\"VARIABLE\": \"value\"}}}}")
    return {scope: {name: str(value) for name, value in variables.items()} for scope, variables in document.items()}


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keygate", description="KeyGate developer tools (local stage only).")
    groups = parser.add_subparsers(dest="group", required=True)
    dev = groups.add_parser("dev", help="the local stage: server, tokens, accounts, invocations")
    commands = dev.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the whole API on 127.0.0.1 (what `make dev` runs)")
    serve.add_argument("--port", type=_port, default=_port(os.environ.get("PORT") or str(DEFAULT_PORT)),
                       help=f"port on 127.0.0.1 (default: $PORT or {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--aws-port", type=_port, default=_port(os.environ.get("KEYGATE_AWS_PORT") or "0"),
                       help="port of the embedded AWS emulation (default: $KEYGATE_AWS_PORT or a free one)")
    serve.add_argument("--jwks-port", type=_port, default=_port(os.environ.get("KEYGATE_JWKS_PORT") or "0"),
                       help="port of the local JWKS (default: $KEYGATE_JWKS_PORT or a free one)")
    serve.add_argument("--parameter-overrides", nargs="*", default=[],
                       help="stack parameters, e.g. RecordCacheTtlSeconds=1 (also $KEYGATE_PARAMETER_OVERRIDES)")
    serve.add_argument("--env-vars", default=os.environ.get("KEYGATE_ENV_VARS"),
                       help="JSON file of function environment overrides, as `sam local --env-vars`")
    serve.add_argument("--demo-user", default="demo", help="user seeded with onboarding and trading handshake")

    token = commands.add_parser("token", help="print a session JWT for a user")
    token.add_argument("--user", required=True)
    token.add_argument("--lifetime", type=int, default=3600, help="seconds until it expires (default 3600)")

    step_up = commands.add_parser("step-up", help="print a passkey step-up token for one change")
    step_up.add_argument("--user", required=True)
    step_up.add_argument("--action", required=True, choices=STEP_UP_ACTIONS)
    target = step_up.add_mutually_exclusive_group()
    target.add_argument("--api-key", help="the key the change is for (GaiaEx)")
    target.add_argument("--id", help="the key's id the change is for (ZDEX)")
    target.add_argument("--passkey-id", help="the passkey to remove (passkeys:delete)")
    step_up.add_argument("--profile", choices=("gaiaex", "zdex"), default=None,
                         help="the wire profile of --request (default: zdex with --id, else gaiaex)")
    step_up.add_argument("--request", default="{}", help="the exact JSON body the mutation will send (default {})")

    onboard = commands.add_parser("onboard", help="put a user's signed agent authorization (and a trade) on the "
                                                  "local exchange bus, as the exchange does")
    onboard.add_argument("--user", required=True)
    onboard.add_argument("--no-trade", action="store_true", help="onboarded, but no trading handshake yet")

    events = commands.add_parser("events", help="print the lifecycle events KeyGate published (one JSON per line)")
    events.add_argument("--type", dest="detail_type", default=None, help="only this detail-type, e.g. ApiKeyCreated")
    events.add_argument("--expiry-now", action="store_true",
                        help="run the expiry notices' schedule now (the server then publishes what is due)")
    admin = groups.add_parser("admin", help="the security team's commands (SigV4-signed, issue 16)")
    admin_commands = admin.add_subparsers(dest="command", required=True)
    revoke = admin_commands.add_parser("revoke", help="revoke a user's key, or all of them, with a reason")
    revoke.add_argument("--user", required=True, help="the key owner's user id")
    revoke.add_argument("--api-key", default=None, help="the key to revoke (default: every key of the user)")
    revoke.add_argument("--reason", required=True, help="why (kept in each key's audit log)")
    revoke.add_argument("--api-url", default=None,
                        help="a deployed stage's URL (signed with your AWS credentials); default: the local server")
    revoke.add_argument("--region", default=None, help="the stage's region (default: your AWS configuration's)")

    invoke = commands.add_parser("invoke", help="run one function with one event, like `sam local invoke`")
    invoke.add_argument("function_id", metavar="FunctionLogicalId")
    invoke.add_argument("events", type=Path, nargs="+", metavar="EVENT_FILE",
                        help="the event; with several, one JSON object maps each file to its result")
    invoke.add_argument("--env-vars", default=None, help="as `sam local invoke --env-vars` (env.json shape)")
    invoke.add_argument("--shared-users", action="store_true",
                        help="use the event's user names as they are (default: fresh users for each run)")
    return parser


# ----------------------------------------------------------------- commands
def _serve(arguments: argparse.Namespace) -> None:
    from keygate_dev.server import ServeError, serve

    overrides = _parameter_overrides([os.environ.get("KEYGATE_PARAMETER_OVERRIDES", ""),
                                      *arguments.parameter_overrides])
    try:
        serve(arguments.port, parameter_overrides=overrides, env_overrides=_env_vars(arguments.env_vars),
              demo_user=arguments.demo_user, aws_port=arguments.aws_port, jwks_port=arguments.jwks_port)
    except ServeError as error:
        raise CliError(str(error)) from None
    # Stopped and cleaned up: end without the interpreter's teardown (docs/local-development.md, "Stopping").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _onboard(arguments: argparse.Namespace) -> None:
    from keygate_dev import exchange_bus

    info = state.running_server()
    if info is None:
        raise CliError(f"No local server runs for {state.state_dir()}: start it with `make dev` first "
                       "(its data lives as long as it runs).")
    if not info.exchange_bus_name:
        raise CliError("This local server has no exchange bus (KEYGATE_AWS=real: a deployed stack's bus "
                       "takes the exchange's own events).")
    wallet = state.wallet_key(arguments.user)
    try:
        exchange_bus.onboard(info, arguments.user, wallet, trade=not arguments.no_trade)
    except exchange_bus.NotRecorded as error:
        raise CliError(str(error)) from None
    handshake = "without" if arguments.no_trade else "with"
    print(f"{arguments.user}: onboarding completed (agent authorization signed by "
          f"{exchange_bus.wallet_address(wallet)}), {handshake} the trading handshake ({info.api_url}).",
          file=sys.stderr)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Function logs go to stderr, the result alone to stdout (as `sam local invoke` does).

    At the descriptor level: the layer's logger holds the original sys.stdout stream.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _invoke(arguments: argparse.Namespace) -> None:
    from keygate_dev.server import LocalStage, local_backend

    missing = [str(path) for path in arguments.events if not path.is_file()]
    if missing:
        raise CliError(f"No event file {', '.join(missing)}.")
    identity = state.load_identity()
    # The sample events carry step-up tokens the local identity provider mints ({{step_up:...}}), as an
    # external issuer would: the invoked functions verify them so (StepUpMode external), whatever the stage's
    # issuer. The built-in ceremony is `keygate dev step-up`'s.
    given = _env_vars(arguments.env_vars)
    env_overrides = {**given, "Parameters": {"STEP_UP_MODE": "external", **given.get("Parameters", {})}}
    info = state.running_server()

    def run(stage: LocalStage) -> dict[str, Any]:
        from keygate_dev import events

        function = stage.runner.function(arguments.function_id)
        if function.template_path != events.template.TEMPLATE_PATH:
            raise CliError(f"{arguments.function_id} belongs to {function.template_path}; invoke runs template.yaml's "
                           "functions (the example's are served by `keygate dev serve`).")
        with _stdout_to_stderr():
            return {str(path): events.run_event(arguments.function_id, path, identity,
                                                isolated=not arguments.shared_users,
                                                environment_of=stage.runner.environment_of)
                    for path in arguments.events}

    try:
        if info is not None:
            if env_overrides:
                info.env_overrides = {**info.env_overrides, **env_overrides}
            result = run(LocalStage.of_running_server(info, identity))
        else:
            with local_backend(identity, env_overrides=env_overrides) as (stage, _):
                result = run(stage)
    except LookupError as error:
        raise CliError(str(error.args[0])) from None
    print(json.dumps(next(iter(result.values())) if len(result) == 1 else result, indent=2))


def _events(arguments: argparse.Namespace) -> None:
    from keygate_dev.lifecycle import EXPIRY_NOTICES, format_events, read_events

    info = state.running_server()
    if arguments.expiry_now:
        if info is None:
            raise CliError(f"No local server runs for {state.state_dir()}: start it with `make dev` first.")
        from keygate_dev.server import LocalStage

        result = LocalStage.of_running_server(info, state.load_identity()).runner.run(EXPIRY_NOTICES, {})
        if result.error is not None:
            raise CliError(f"the expiry notices run failed: {result.error.get('errorMessage')}")
        print(f"expiry notices: {json.dumps(result.payload)}", file=sys.stderr)
    for line in format_events(read_events(), arguments.detail_type):
        print(line)
    if info is None:
        print(f"(no local server runs for {state.state_dir()}: these are the last one's events)", file=sys.stderr)


def _admin_revoke(arguments: argparse.Namespace) -> None:
    from keygate_dev import admin, local_iam

    if arguments.api_url:
        import boto3

        session = boto3.Session(region_name=arguments.region)
        credentials = session.get_credentials()
        if credentials is None or not session.region_name:
            raise CliError("No AWS credentials or region: sign in (aws sso login, AWS_PROFILE) and pass --region.")
        api_url, region, credentials = arguments.api_url, session.region_name, credentials.get_frozen_credentials()
    else:
        info = state.running_server()
        if info is None:
            raise CliError("Give --api-url, or start the local server (make dev).")
        api_url, region, credentials = info.api_url, info.region, local_iam.LOCAL_OPERATOR_CREDENTIALS
    answer = admin.revoke(api_url, user_id=arguments.user, api_key=arguments.api_key, reason=arguments.reason,
                          credentials=credentials, region=region)
    print(answer.text)
    if answer.status_code != 200:
        raise CliError(f"revocation refused: HTTP {answer.status_code}")


def _token(arguments: argparse.Namespace) -> None:
    print(state.load_identity().session_token(arguments.user, lifetime_seconds=arguments.lifetime))


def _step_up(arguments: argparse.Namespace) -> None:
    try:
        request = json.loads(arguments.request)
    except ValueError as error:
        raise CliError(f"--request is not JSON: {error}") from None
    if not isinstance(request, dict):
        raise CliError("--request must be a JSON object (the mutation's body), e.g. '{\"label\": \"bot\"}'")
    identity = state.load_identity()
    info = state.running_server()
    mode = (info.parameters.get("StepUpMode") if info is not None else None) or "builtin"
    if info is None or mode == "external":
        if info is None and (request or arguments.api_key or arguments.id or arguments.passkey_id):
            raise CliError(f"No local server runs for {state.state_dir()}: start it with `make dev` first.")
        # An external issuer's token, as the local identity provider (StepUpMode external) mints it.
        print(identity.step_up_token(arguments.user, arguments.action))
        return
    from keygate_dev.passkey_client import CeremonyError, PasskeyApp

    origin = info.parameters["PasskeyOrigins"].split(",")[0]
    device = state.load_authenticator(origin)
    app = PasskeyApp(info.api_url, identity.session_token(arguments.user), device)
    profile = arguments.profile or ("zdex" if arguments.id else "gaiaex")
    try:
        # The summary on standard error, as the app shows it before the passkey is touched (an Ed25519 key's
        # fingerprint in it, to compare with keygate-keygen's): stdout stays the token alone.
        token = app.step_up_token(arguments.action, request=request, profile=profile, api_key=arguments.api_key,
                                  id=arguments.id, passkey_id=arguments.passkey_id,
                                  shown=lambda summary: print(f"Confirming: {summary}", file=sys.stderr))
    except CeremonyError as error:
        raise CliError(str(error)) from None
    finally:
        state.save_authenticator(device)
    print(token)


COMMANDS = {"serve": _serve, "token": _token, "step-up": _step_up, "onboard": _onboard, "invoke": _invoke,
            "events": _events, "revoke": _admin_revoke}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        COMMANDS[arguments.command](arguments)
    except (CliError, state.StateError, EmulationError) as error:
        print(f"keygate: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
