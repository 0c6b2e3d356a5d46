"""`keygate dev serve` starts, answers, stops cleanly and starts again; a taken port is a clear error."""

from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path

import requests

from .conftest import KEYGATE, port_is_closed, start_server, state_environment


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
    assert "Traceback" not in first.log()
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


def test_a_taken_port_is_a_one_line_error(tmp_path: Path):
    # Given a port something else listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        # When the server is asked to use it
        completed = subprocess.run([str(KEYGATE), "dev", "serve", "--port", str(port)],
                                   env=state_environment(tmp_path / "state"),
                                   capture_output=True, text=True, timeout=120)
    # Then it refuses at once with one readable line, not a traceback
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines() == [
        f"keygate: Port {port} on 127.0.0.1 is already in use: stop what uses it, or choose another port "
        "(make dev PORT=3001)."]
