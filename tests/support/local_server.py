"""The real local server, started as `make dev` starts it, for tests over loopback HTTP (tests/e2e).

`start_server` runs `.venv/bin/keygate dev serve` as a subprocess with its own
state directory and a free port, waits for its readiness line, and `stop`
sends SIGINT (Ctrl-C) and returns the exit status. Its output goes to a file
(a pipe nobody reads could fill up and block the server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess  # nosec B404  # runs only this project's own commands, no shell
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from keygate.records import AccountState
from keygate.storage import layout
from keygate_dev import state
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.server import READY_LINE

KEYGATE = Path(sys.executable).with_name("keygate")
READY = re.compile(re.escape(READY_LINE) + r" (http://\S+)")
START_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 20
HTTP_TIMEOUT_SECONDS = 30
# Short enough that the revocation bound can be waited out in the journey.
RECORD_CACHE_TTL_SECONDS = 1


def state_environment(state_dir: Path) -> dict[str, str]:
    """The environment of a `keygate` command that uses this state directory."""
    return {**os.environ, "KEYGATE_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}


@dataclass
class LocalServer:
    process: subprocess.Popen
    state_dir: Path
    log_path: Path
    base_url: str = ""

    @property
    def environment(self) -> dict[str, str]:
        return state_environment(self.state_dir)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def keygate(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `keygate dev ...` against this server (same state directory), like a second terminal."""
        completed = subprocess.run([str(KEYGATE), "dev", *arguments], env=self.environment, capture_output=True,  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                                   text=True, timeout=120)
        if check:
            assert completed.returncode == 0, (arguments, completed.stderr)
        return completed

    @cached_property
    def identity(self) -> LocalIdentityProvider:
        """The server's local identity provider (its state directory holds the keys): it mints in-process the
        tokens `keygate dev token` and `keygate dev step-up` print."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(state.STATE_DIR_VARIABLE, str(self.state_dir))
            return state.load_identity()

    def onboard(self, user: str, *, trade: bool = True) -> None:
        """The state `keygate dev onboard [--no-trade]` ends in, written directly from this process for speed (the
        command signs a real EIP-712 authorization and waits for the bus to deliver it, a few seconds a user:
        tests/e2e/test_exchange_events_local.py runs it): the user's onboarding and trading-handshake state."""
        info = self.published()
        aws = info["aws_environment"]
        dynamodb = boto3.client("dynamodb", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name=aws["AWS_REGION"],
                                aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])
        dynamodb.put_item(TableName=info["resource_names"]["KeysTable"], Item=layout.account_item(
            user, AccountState(onboarding_completed=True, trading_handshake_completed=trade)))

    def step_up(self, user: str, method: str, path: str, body: Any = None) -> str:
        """`keygate dev step-up` for exactly this request (its action, target and body), as the app would
        confirm it: a real passkey ceremony on the built-in issuer, a minted token on an external one ("" when
        the step-up options refuse the body)."""
        # A body the options refuse (a test of a bad request) gets no token: the mutation answers for the body
        # first (400), as it would with one.
        completed = self.keygate("step-up", "--user", user, *step_up_arguments(method, path, body), check=False)
        assert completed.returncode == 0 or "answered 400" in completed.stderr, completed.stderr
        return completed.stdout.strip()

    def published(self) -> dict:
        """What the running server wrote to its state directory for the other commands."""
        return json.loads((self.state_dir / "server.json").read_text())

    def ports(self) -> set[int]:
        """Every port the server listens on: the API, the AWS emulation and the JWKS server."""
        info = self.published()
        urls = [info["api_url"], info["aws_endpoint_url"], info["parameters"]["SessionJwksUrl"],
                info["parameters"]["StepUpJwks"]]
        return {urlsplit(url).port for url in urls if url}

    def child_processes(self) -> list[int]:
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    children.append(int(entry.name))
        return children

    def stop(self) -> int:
        """Ctrl-C, then the exit status (killed and failed if it does not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"the local server did not stop on SIGINT:\n{self.log()}")
        return self.process.returncode


def step_up_arguments(method: str, path: str, body: Any = None) -> list[str]:
    """`keygate dev step-up`'s arguments for a request: --action of its route, the target its path names
    (--api-key, --id or --passkey-id, with --profile zdex for ZDEX's routes) and --request with its body."""
    from keygate import routes
    from keygate.routing import Target
    from tests.support.apigw_events import resource_parameters

    # A literal segment wins over a {parameter}, as in API Gateway (/api-keys/all over /api-keys/{api_key}).
    for route in sorted(routes.ROUTES, key=lambda route: len(route.path_parameters)):
        try:
            parameters = resource_parameters(route.path, path.split("?")[0])
        except ValueError:
            continue
        literal = all(part.startswith("{") or part == given for part, given in
                      zip(route.path.strip("/").split("/"), path.strip("/").split("/"), strict=True))
        if route.method != method.upper() or not literal or route.step_up is None:
            continue
        arguments = ["--action", route.step_up.value]
        if route.target is not None:
            name, kind = route.target
            flag = {Target.KEY_ID: "--api-key", Target.HANDLE: "--id", Target.PASSKEY: "--passkey-id"}[kind]
            arguments += [flag, parameters[name]]
        if route.tag == "zdex":
            arguments += ["--profile", "zdex"]
        return [*arguments, "--request", json.dumps(body if isinstance(body, dict) else {})]
    raise LookupError(f"no mutation route serves {method} {path}")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_server(state_dir: Path, *arguments: str, port: int | None = 0,
                 environment: dict[str, str] | None = None, sigint_ignored: bool = False) -> LocalServer:
    """`port=None` passes no --port (the server then reads $PORT); `environment` is added to its own.

    `sigint_ignored` starts it as a non-interactive shell starts a background job: SIGINT ignored
    (the disposition survives exec).
    """
    # The server creates the state directory itself (0700); its log goes next to it.
    log_path = state_dir.with_name(state_dir.name + ".log")
    port_arguments = [] if port is None else ["--port", str(port)]
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
            [str(KEYGATE), "dev", "serve", *port_arguments, *arguments],
            env={**state_environment(state_dir), **(environment or {})},
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigint if sigint_ignored else None)
    server = LocalServer(process, state_dir, log_path)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = READY.search(server.log())
        if found:
            server.base_url = found.group(1)
            return server
        if process.poll() is not None:
            pytest.fail(f"the local server exited with {process.returncode}:\n{server.log()}")
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"the local server did not become ready:\n{server.log()}")


def port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class AppUser:
    """A user of the exchange's app calling the local server over HTTP: their session JWT in `Authorization`,
    and for a change a fresh passkey step-up token in `X-PASSKEY-TOKEN`, both from the server's identity provider.

    `onboard` gives the user, first, as `keygate dev onboard` does: "trade" (onboarding and the trading
    handshake), "no-trade" (onboarding only) or None (neither).
    """

    server: LocalServer
    user: str
    onboard: str | None = "trade"
    session: str = field(init=False)

    def __post_init__(self) -> None:
        if self.onboard is not None:
            self.server.onboard(self.user, trade=self.onboard == "trade")
        self.session = self.server.identity.session_token(self.user)

    def step_up(self, action: str, *, method: str | None = None, path: str | None = None, body: Any = None) -> str:
        """A step-up token: for exactly this request (`method`, `path`, `body`) through `keygate dev step-up`,
        or, without a request, one the local identity provider mints for `action` alone (an external issuer's
        token, refused by the built-in issuer's checks: what a test of a refusal sends)."""
        if method is not None and path is not None:
            return self.server.step_up(self.user, method, path, body)
        return self.server.identity.step_up_token(self.user, action)

    def call(self, method: str, path: str, *, action: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> requests.Response:
        """`action` adds a step-up token for this very request; `headers` are sent as given, after the session's."""
        request_headers = {"Authorization": f"Bearer {self.session}"}
        if action:
            request_headers["X-PASSKEY-TOKEN"] = self.step_up(action, method=method, path=path, body=body)
        request_headers.update(headers or {})
        return requests.request(method, self.server.base_url + path, headers=request_headers, json=body,
                                params=query, timeout=HTTP_TIMEOUT_SECONDS)


def serve(tmp_path_factory: pytest.TempPathFactory, parameters: dict[str, str]) -> Iterator[LocalServer]:
    """A module-scoped server fixture's body: a server with these stack parameters overridden, stopped after."""
    overrides = [f"{name}={value}" for name, value in parameters.items()]
    server = start_server(tmp_path_factory.mktemp("e2e") / "state",
                          *(["--parameter-overrides", *overrides] if overrides else []))
    yield server
    assert server.stop() == 0, server.log()
