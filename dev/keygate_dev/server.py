"""`keygate dev serve` (what `make dev` runs): the whole API on 127.0.0.1, no Docker, no AWS account.

One process holds everything, in threads:

- the AWS backend (keygate_dev.emulation: moto's server by default),
- the local identity provider's JWKS on its own 127.0.0.1 port (keygate_dev.jwks_server),
  trusted by the stack parameters SessionJwksUrl / StepUpJwks exactly like a real IdP,
- SAM CLI's local API Gateway with the in-process Lambda runner (keygate_dev.local_api),
- the lifecycle events: the keys table's stream delivered to the publisher, the expiry notices' timer, and
  the bus delivered to `<state dir>/events.jsonl` (keygate_dev.lifecycle; `keygate dev events`).
- the exchange's bus, its rules and queues in the emulation, and the delivery of their events to
  ExchangeEventsFunction, as Lambda's event source mapping would (keygate_dev.exchange_bus).

While it runs, `<state dir>/server.json` tells the other `keygate dev` commands where it is.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import signal
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from werkzeug.serving import make_server

from keygate_dev import dev_page, exchange_bus, state, template
from keygate_dev.emulation import AwsEmulation
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.jwks_server import JwksServer
from keygate_dev.lambda_runner import InProcessLambdaRunner, local_functions
from keygate_dev.lifecycle import LocalLifecycleEvents

HOST = "127.0.0.1"
LOCAL_RP_ID = "localhost"  # the local stage's passkeys (http://localhost:<port> resolves to HOST)
DEFAULT_PORT = 3000
LOCAL_STAGE = "local"
DEMO_USER = "demo"
READY_LINE = "KeyGate local API listening on"


class ServeError(Exception):
    """The server cannot start for a reason the user can fix (shown as one line, no traceback)."""


# The example API's withdrawal routes (examples/protected-api), declared as a deployment declares its own:
# only keys holding `withdraw` reach them, and its catch-all `ANY /v1/misc/{proxy+}` needs `withdraw` too,
# since SafeProxyResources does not list it (docs/signing.md, check 6). Keys may hold `withdraw` only where
# AllowedPermissions says so (not on the defaults, GaiaEx's deployment).
LOCAL_WITHDRAWAL_ROUTES = "POST /v1/wallet/withdrawals,POST /v1/accounts/{account_id}/withdrawals"
# The local exchange's agent address (ExchangeAgentAddress): `keygate dev onboard` authorizes it.
LOCAL_AGENT_ADDRESS = "0x000000000000000000000000000000000000a9e7"


def local_parameters(identity: LocalIdentityProvider, session_jwks_url: str, step_up_jwks_url: str,
                     overrides: Mapping[str, str] | None = None, *, port: int = DEFAULT_PORT) -> dict[str, str]:
    """The stack parameters of the local stage: the identity parameters point at the local IdP, and the
    example API's withdrawal routes are declared.

    The built-in step-up's relying party is `localhost` and its origin http://localhost:<port>: browsers refuse
    an IP address as an RP ID, and treat http://localhost as a secure context. The local IdP's step-up JWKS
    stays configured, so StepUpMode=external works too."""
    return {"Stage": LOCAL_STAGE, "SessionIssuer": identity.session_issuer, "SessionJwksUrl": session_jwks_url,
            "SessionAudience": identity.audience, "StepUpIssuer": identity.step_up_issuer,
            "StepUpJwks": step_up_jwks_url, "StepUpAudience": identity.step_up_audience,
            "WithdrawalRoutes": LOCAL_WITHDRAWAL_ROUTES, "ExchangeAgentAddress": LOCAL_AGENT_ADDRESS,
            "StepUpMode": "builtin", "PasskeyRpId": LOCAL_RP_ID, "PasskeyOrigins": f"http://{LOCAL_RP_ID}:{port}",
            **(overrides or {})}


@dataclass
class LocalStage:
    """The functions of the local stage, wired to one AWS backend and one identity provider."""

    runner: InProcessLambdaRunner
    identity: LocalIdentityProvider
    parameters: dict[str, str]

    @classmethod
    def build(cls, identity: LocalIdentityProvider, parameters: dict[str, str], resource_names: Mapping[str, str],
              aws_environment: Mapping[str, str],
              env_overrides: Mapping[str, Mapping[str, str]] | None = None) -> LocalStage:
        functions = local_functions(parameters, resource_names, aws_environment, env_overrides)
        return cls(InProcessLambdaRunner(functions), identity, parameters)

    @classmethod
    def of_running_server(cls, info: state.ServerInfo, identity: LocalIdentityProvider) -> LocalStage:
        return cls.build(identity, info.parameters, info.resource_names, info.aws_environment, info.env_overrides)

    def onboard(self, user_id: str, *, trade: bool = True) -> None:
        """Give a user the onboarding (and trading-handshake) state the prerequisites check reads, written
        directly (the demo user, at start-up); `keygate dev onboard` goes through the bus instead."""
        with self.runner.environment_of("CreateApiKeyFunction"):
            from keygate import wiring
            from keygate.records import AccountState

            wiring.management().keys.put_account_state(
                user_id, AccountState(onboarding_completed=True, trading_handshake_completed=trade))


def _jwks_server(identity: LocalIdentityProvider, port: int) -> JwksServer:
    try:
        return JwksServer(identity, port)
    except OSError as error:
        raise ServeError(f"Cannot serve the local JWKS on {HOST}:{port}: {error.strerror}.") from None


def invoke_exchange_events(stage: LocalStage) -> exchange_bus.Invoke:
    """ExchangeEventsFunction as the event source mapping invokes it: its answer, or an error (retry all)."""
    def invoke(event: dict) -> object:
        outcome = stage.runner.run(exchange_bus.FUNCTION_ID, event)
        if outcome.error is not None:
            raise RuntimeError(f"{exchange_bus.FUNCTION_ID} failed: {outcome.error.get('errorType')}")
        return outcome.payload

    return invoke


@contextmanager
def exchange_delivery(stage: LocalStage, aws: AwsEmulation) -> Iterator[str]:
    """The exchange's bus, rules and queues in an emulator, delivered to the function while this runs; the
    bus name ("" against real AWS: a deployed stack has its own bus and event source mapping)."""
    if aws.mode == "real":
        yield ""
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        bus = exchange_bus.ExchangeBus(aws.client("events"), aws.client("sqs"), exchange_bus.local_bus_name(
            stage.parameters.get("Stage", LOCAL_STAGE))).create()
    except (BotoCoreError, ClientError) as error:  # an emulator without EventBridge or SQS: serve without the bus
        logging.getLogger("keygate.local").warning("no exchange bus at %s (%s): keygate dev onboard is unavailable",
                                                   aws.endpoint_url, error)
        yield ""
        return
    with exchange_bus.Delivery(bus, invoke_exchange_events(stage)):
        yield bus.bus_name


@contextmanager
def local_backend(identity: LocalIdentityProvider, parameter_overrides: Mapping[str, str] | None = None,
                  env_overrides: Mapping[str, Mapping[str, str]] | None = None, *, aws_port: int = 0,
                  jwks_port: int = 0, port: int = DEFAULT_PORT) -> Iterator[tuple[LocalStage, AwsEmulation]]:
    """JWKS server + AWS backend + the stage's functions, for the server or for one `keygate dev invoke`.

    Ports 0 pick free ones; fixed ports let a Docker container reach both (events/env.json).
    """
    with _jwks_server(identity, jwks_port) as jwks, AwsEmulation(port=aws_port) as aws:
        parameters = local_parameters(identity, jwks.session_jwks_url, jwks.step_up_jwks_url, parameter_overrides,
                                      port=port)
        yield LocalStage.build(identity, parameters, aws.resource_names(), aws.function_environment(),
                               env_overrides), aws


def _listening_socket(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse it at once
    try:
        listener.bind((HOST, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise ServeError(f"Port {port} on {HOST} is already in use: stop what uses it, or choose another "
                             f"port (make dev PORT=3001).") from None
        raise ServeError(f"Cannot listen on {HOST}:{port}: {error.strerror}.") from None
    return listener


EXCHANGE_BUS_LINE = "Exchange events: bus"


def exchange_bus_line(endpoint_url: str, bus_name: str, region: str) -> str:
    """Where a developer puts exchange events by hand (README, "Events in"), as the server prints it."""
    detail = '{"user_id": "demo", "trade_id": "t-1", "executed_at": "2026-01-01T00:00:00Z"}'
    return (f"{EXCHANGE_BUS_LINE} {bus_name} at {endpoint_url} (e.g. AWS_ACCESS_KEY_ID=keygate-local "
            f"AWS_SECRET_ACCESS_KEY=keygate-local aws --endpoint-url {endpoint_url} --region {region} events "
            f"put-events --entries '[{{\"EventBusName\": \"{bus_name}\", \"Source\": \"exchange.trading\", "
            f"\"DetailType\": \"TradeExecuted\", \"Detail\": {json.dumps(detail)}}}]')")


WALKTHROUGH_START = "In another terminal:"


def walkthrough(base_url: str, demo_user: str, bin_dir: Path | None = None) -> str:
    """The copy-paste walkthrough `keygate dev serve` prints (tests/e2e runs it as printed).

    Commands use the virtual environment's absolute path, so they work from any directory.
    """
    bin_dir = bin_dir or Path(sys.executable).parent
    order = '{"symbol": "BTC-USD", "side": "buy", "qty": "0.01"}'
    page_url = f"http://{LOCAL_RP_ID}:{base_url.rsplit(':', 1)[-1]}{dev_page.PAGE_PATH}"
    return f"""
Demo user "{demo_user}" has completed onboarding and the trading handshake. {WALKTHROUGH_START}

  KG={base_url}; BIN={shlex.quote(str(bin_dir))}
  # 1. a session token, and a passkey step-up for the exact key to create (the app's login and passkey
  #    prompt: a real WebAuthn ceremony with a software authenticator, its passkey registered on first use)
  SESSION=$("$BIN/keygate" dev token --user {demo_user})
  BODY='{{"label": "my bot", "permissions": ["read", "trade"], "ip_whitelist": ["127.0.0.1"]}}'
  STEP_UP=$("$BIN/keygate" dev step-up --user {demo_user} --action api_keys:create --request "$BODY")
  # 2. create a key restricted to this machine (the secret is shown in this answer only)
  CREATED=$(curl -sS -X POST "$KG/v1/trade/api-keys" -H "Authorization: Bearer $SESSION" \\
      -H "X-PASSKEY-TOKEN: $STEP_UP" -H 'Content-Type: application/json' -d "$BODY")
  echo "$CREATED"
  field() {{ echo "$CREATED" | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }}
  export KEYGATE_API_KEY=$(field api_key) KEYGATE_API_SECRET=$(field api_secret)
  # 3. as a bot: sign requests with the SDK's keygate-sign and send them (KeyGate's /self, the example orders API)
  "$BIN/keygate-sign" --send "$KG/v1/trade/api-keys/self"
  "$BIN/keygate-sign" --send -d '{order}' "$KG/v1/trade/orders"
  # 4. revoke the key (another passkey confirmation, for this key)
  curl -sS -X DELETE "$KG/v1/trade/api-keys/$KEYGATE_API_KEY" -H "Authorization: Bearer $SESSION" \\
      -H "X-PASSKEY-TOKEN: $("$BIN/keygate" dev step-up --user {demo_user} --action api_keys:revoke \\
      --api-key "$KEYGATE_API_KEY")"

Passkeys in a browser: {page_url} (on localhost, not 127.0.0.1: the RP ID).
Other users: $BIN/keygate dev onboard --user alice [--no-trade]. One function, one event, no HTTP:
$BIN/keygate dev invoke CreateApiKeyFunction events/create_api_key.200.json. Ctrl-C stops the server.
"""


def walkthrough_commands(printed: str) -> str:
    """The shell commands of a printed walkthrough: the indented block after WALKTHROUGH_START."""
    block = []
    for line in printed.split(WALKTHROUGH_START, 1)[1].splitlines()[1:]:
        if block and not line.startswith("  "):
            break
        if line.startswith("  "):
            block.append(line[2:])
    return "\n".join(block) + "\n"


def _quiet_libraries() -> None:
    """The gateway reports its own decisions (keygate.local); SAM CLI's would repeat them as errors."""
    logging.getLogger("samcli").setLevel(logging.CRITICAL)
    local = logging.getLogger("keygate.local")
    if not local.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("keygate-local: %(message)s"))
        local.addHandler(handler)
        local.setLevel(logging.INFO)
        local.propagate = False
    # A handler that records no metric is normal here; Powertools warns about it once per process.
    warnings.filterwarnings("ignore", message="No application metrics to publish")


class _Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM, turned into an exception in the main thread.

    Installed for SIGINT too: a process started with SIGINT ignored (a background job of a
    non-interactive shell) would otherwise keep ignoring Ctrl-C.
    """


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def serve(port: int = DEFAULT_PORT, *, parameter_overrides: Mapping[str, str] | None = None,
          env_overrides: Mapping[str, Mapping[str, str]] | None = None, demo_user: str = DEMO_USER,
          aws_port: int = 0, jwks_port: int = 0, out: TextIO = sys.stdout) -> None:
    """Run until Ctrl-C or SIGTERM; raises ServeError for problems the user can fix."""
    from keygate_dev.local_api import HeaderLinesRequestHandler, KeyGateLocalApigwService, LocalApiDefinition

    os.environ["SAM_CLI_TELEMETRY"] = "0"  # SAM CLI's emulator would otherwise report usage
    _quiet_libraries()
    identity = state.load_identity()
    already = state.running_server()
    if already is not None:
        raise ServeError(f"A local server already runs for {state.state_dir()} (pid {already.pid}, "
                         f"{already.api_url}); stop it, or set KEYGATE_STATE_DIR for a second one.")
    listener = _listening_socket(port)
    previous_handlers = {signum: signal.signal(signum, _raise_stop) for signum in _STOP_SIGNALS}
    info: state.ServerInfo | None = None
    server = None
    lifecycle_events = None
    try:
        bound_port = listener.getsockname()[1]
        with local_backend(identity, parameter_overrides, env_overrides, aws_port=aws_port,
                           jwks_port=jwks_port, port=bound_port) as (stage, aws), ExitStack() as stack:
            definition = LocalApiDefinition.load(stage.runner, stage.parameters)
            service = KeyGateLocalApigwService(definition, stage.runner, port=bound_port, host=HOST)
            service.create()
            dev_page.install(service.app, identity, demo_user)
            stage.onboard(demo_user)
            bus = {**template.parameter_defaults(), **stage.parameters}["LifecycleEventBusName"]
            if aws.mode != "real":  # a deployed stack publishes its own (keygate_dev.lifecycle)
                try:
                    lifecycle_events = LocalLifecycleEvents(aws, stage.runner, bus).start()
                except Exception as error:  # noqa: BLE001 (an emulator without streams or EventBridge)
                    print(f"Lifecycle events are not available on this AWS backend: {error}", file=out)
            bus_name = stack.enter_context(exchange_delivery(stage, aws))
            server = make_server(HOST, bound_port, service.app, threaded=True, fd=listener.fileno(),
                                 request_handler=HeaderLinesRequestHandler)
            base_url = f"http://{HOST}:{bound_port}"
            info = state.ServerInfo(pid=os.getpid(), api_url=base_url, aws_endpoint_url=aws.endpoint_url,
                                    aws_mode=aws.mode, aws_environment=aws.function_environment(),
                                    resource_names=aws.resource_names(), parameters=stage.parameters,
                                    region=aws.region, env_overrides={k: dict(v) for k, v in
                                                                      (env_overrides or {}).items()},
                                    exchange_bus_name=bus_name)
            info.save()
            backend = {"embedded": f"embedded moto server at {aws.endpoint_url}",
                       "endpoint": f"AWS emulator at {aws.endpoint_url}",
                       "real": f"real AWS ({aws.region}, table {aws.table_name})"}[aws.mode]
            print(walkthrough(base_url, demo_user), file=out)
            print(f"AWS: {backend}; state: {state.state_dir()}", file=out)
            if lifecycle_events is not None:
                print(f"Lifecycle events: published to bus {bus!r}; see them with $BIN/keygate dev events", file=out)
            if bus_name:
                print(exchange_bus_line(aws.endpoint_url or "", bus_name, aws.region), file=out)
            print(f"{READY_LINE} {base_url}", file=out, flush=True)
            with suppress(KeyboardInterrupt, _Stop):
                server.serve_forever()
            # A second Ctrl-C during clean-up (bounded: the threads' joins time out) must not cut it short.
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            if lifecycle_events is not None:  # while the emulation still answers: its thread ends at once
                lifecycle_events.stop()
    finally:
        if lifecycle_events is not None:
            lifecycle_events.stop()
        if server is not None:
            server.server_close()
        listener.close()
        if info is not None:
            info.remove()
        for signum, previous in previous_handlers.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    print("KeyGate local server stopped.", file=out, flush=True)
