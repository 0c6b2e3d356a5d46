"""`keygate dev serve` starts, answers, stops cleanly and starts again; a taken port is a clear error."""

from __future__ import annotations

import socket
import stat
import subprocess  # nosec B404  # runs only this project's own commands, no shell
from pathlib import Path

import boto3
import pytest
import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from keygate_dev.cli import build_parser
from keygate_dev.emulation import EMULATOR_CREDENTIALS, LOCAL_NONCES_TABLE_NAME, LOCAL_TABLE_NAME
from keygate_dev.server import DEFAULT_PORT
from tests.support.local_server import KEYGATE, port_is_closed, start_server, state_environment


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_default_port_is_3000_unless_port_says_otherwise(monkeypatch: pytest.MonkeyPatch):
    # Given no PORT in the environment, Then `keygate dev serve` (what `make dev` runs) would use 3000
    monkeypatch.delenv("PORT", raising=False)
    assert build_parser().parse_args(["dev", "serve"]).port == DEFAULT_PORT == 3000
    # Given PORT=3111 (make dev PORT=3111), Then that port
    monkeypatch.setenv("PORT", "3111")
    assert build_parser().parse_args(["dev", "serve"]).port == 3111


def test_port_from_the_environment_is_served(tmp_path: Path):
    # Given PORT set in the environment and no --port argument
    port = free_port()
    server = start_server(tmp_path / "state", port=None, environment={"PORT": str(port)})
    try:
        # Then the API listens on exactly that port
        assert server.base_url == f"http://127.0.0.1:{port}"
        assert requests.get(server.base_url + "/v1/time", timeout=30).status_code == 200
    finally:
        assert server.stop() == 0, server.log()


def test_the_server_stops_on_ctrl_c_and_a_second_start_works(tmp_path: Path):
    # Given a server started on a free port with a fresh state directory
    state_dir = tmp_path / "state"
    first = start_server(state_dir)
    assert requests.get(first.base_url + "/v1/time", timeout=30).status_code == 200
    ports = first.ports()
    port = int(first.base_url.rsplit(":", 1)[1])
    # And the local keys it trusts are private to the user
    assert stat.S_IMODE((state_dir / "identity.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    # And it runs everything in its own process
    assert first.child_processes() == []

    # When it gets Ctrl-C
    status = first.stop()
    # Then it exits cleanly, releases every port and forgets that it was running
    assert status == 0, first.log()
    assert "Traceback" not in first.log() and "KeyGate local server stopped." in first.log()
    assert all(port_is_closed(each) for each in ports), ports
    assert not (state_dir / "server.json").exists()

    # When it is started again on the same port with the same state directory
    second = start_server(state_dir, port=port)
    try:
        # Then it serves again, with the same local identity keys
        assert second.base_url == first.base_url
        session = second.keygate("token", "--user", "demo").stdout.strip()
        listed = requests.get(second.base_url + "/v1/trade/api-keys", headers={"Authorization": f"Bearer {session}"},
                              timeout=30)
        assert listed.status_code == 200, listed.text
    finally:
        assert second.stop() == 0, second.log()


def test_the_server_stops_on_sigint_even_when_its_parent_ignored_sigint(tmp_path: Path):
    # Given a server started as a background job of a non-interactive shell starts it: SIGINT ignored
    state_dir = tmp_path / "state"
    server = start_server(state_dir, sigint_ignored=True)
    ports = server.ports()
    # When it gets SIGINT
    status = server.stop()
    # Then it stops as after Ctrl-C: exit 0, every port released, server.json removed
    assert status == 0, server.log()
    assert "Traceback" not in server.log() and "KeyGate local server stopped." in server.log()
    assert all(port_is_closed(each) for each in ports), ports
    assert not (state_dir / "server.json").exists()


def test_a_taken_port_is_a_one_line_error(tmp_path: Path):
    # Given a port something else listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        # When the server is asked to use it
        completed = subprocess.run([str(KEYGATE), "dev", "serve", "--port", str(port)],  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                                   env=state_environment(tmp_path / "state"),
                                   capture_output=True, text=True, timeout=120)
    # Then it refuses at once with one readable line, not a traceback
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines() == [
        f"keygate: Port {port} on 127.0.0.1 is already in use: stop what uses it, or choose another port "
        "(make dev PORT=3001)."]


def test_aws_endpoint_url_switches_to_another_emulator(tmp_path: Path):
    # Given an AWS emulator that something else runs (here a separate moto server)
    emulator = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    emulator.start()
    host, port = emulator.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        # When the local server is started with AWS_ENDPOINT_URL pointing at it
        server = start_server(tmp_path / "state", environment={"AWS_ENDPOINT_URL": endpoint})
        try:
            assert server.published()["aws_mode"] == "endpoint"
            session = server.keygate("token", "--user", "demo").stdout.strip()
            step_up = server.step_up("demo", "POST", "/v1/trade/api-keys", {"label": "via endpoint"})
            created = requests.post(server.base_url + "/v1/trade/api-keys", json={"label": "via endpoint"},
                                    headers={"Authorization": f"Bearer {session}", "X-PASSKEY-TOKEN": step_up},
                                    timeout=30)
            assert created.status_code == 200, created.text
        finally:
            assert server.stop() == 0, server.log()
        # Then the tables were created from the template there, and the key and its secret live there
        clients = {service: boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                         aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                         aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
                   for service in ("dynamodb", "secretsmanager")}
        assert {LOCAL_TABLE_NAME, LOCAL_NONCES_TABLE_NAME} <= set(clients["dynamodb"].list_tables()["TableNames"])
        secrets = clients["secretsmanager"].list_secrets()["SecretList"]
        assert any(created.json()["api_key"] in secret["Name"] for secret in secrets), secrets
        # And stopping the local server left the other emulator running
        assert not port_is_closed(port)
    finally:
        emulator.stop()


def test_real_aws_without_credentials_is_a_one_line_error(tmp_path: Path):
    # Given the switch to real AWS, and no credentials anywhere
    environment = {**state_environment(tmp_path / "state"), "KEYGATE_AWS": "real",
                   "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                   "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1"}
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        environment.pop(name, None)
    # When the server is started
    completed = subprocess.run([str(KEYGATE), "dev", "serve", "--port", "0"],  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                               env=environment, capture_output=True, text=True, timeout=120)
    # Then it explains, in one line and without a traceback, that it looked for the deployed stack
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keygate: KEYGATE_AWS=real: cannot read the outputs of stack "
                                                   "'keygate-dev'"), completed.stderr
