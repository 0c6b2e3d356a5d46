"""`keygate dev serve` ends without the interpreter's teardown once the server has stopped.

After a busy session the emulation holds gigabytes, and freeing it object by object at exit took longer than the
e2e tests' stop deadline (20 s); the server's own clean-up (ports, server.json, threads) runs before that.
"""

from __future__ import annotations

import pytest

from keygate_dev import cli, server


class Exited(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _exit(status: int) -> None:
    raise Exited(status)


def test_a_stopped_server_ends_the_process_at_once_with_status_0(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]):
    # Given a server that serves, is stopped and says so
    monkeypatch.setattr(server, "serve", lambda *_args, **_kwargs: print("KeyGate local server stopped."))
    monkeypatch.setattr(cli.os, "_exit", _exit)
    # When `keygate dev serve` returns from it
    with pytest.raises(Exited) as exited:
        cli.main(["dev", "serve"])
    # Then the process ends with status 0, after what the server printed
    assert exited.value.status == 0
    assert capsys.readouterr().out == "KeyGate local server stopped.\n"


def test_a_server_that_cannot_start_still_exits_through_main_with_its_error(monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]):
    # Given a server that cannot start
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise server.ServeError("Port 3000 is taken.")

    monkeypatch.setattr(server, "serve", refuse)
    monkeypatch.setattr(cli.os, "_exit", _exit)
    # When `keygate dev serve` runs
    status = cli.main(["dev", "serve"])
    # Then main returns 1 with the one-line error, as every other command's error
    assert status == 1
    assert capsys.readouterr().err == "keygate: Port 3000 is taken.\n"
