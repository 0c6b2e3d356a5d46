"""`keygate dev serve` ends without the interpreter's teardown once the server has stopped and cleaned up
(docs/local-development.md, "Stopping"); a server that fails still exits through `main` with its status."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from keygate_dev import cli, server
from keygate_dev.emulation import EmulationError

SERVE_ENVIRONMENT = ("PORT", "KEYGATE_AWS_PORT", "KEYGATE_JWKS_PORT", "KEYGATE_PARAMETER_OVERRIDES", "KEYGATE_ENV_VARS")


class Exited(Exception):
    def __init__(self, status: int, written: bytes) -> None:
        super().__init__(status)
        self.status, self.written = status, written


@contextmanager
def serving(serve: Callable[..., None]) -> Iterator[io.BytesIO]:
    """`serve` in place of the server, on a stdout like a pipe's or a file's: block-buffered, so a line reaches
    it only once flushed (set here, in the test's own phase: pytest swaps sys.stdout between phases)."""
    written = io.BytesIO()

    def exit_now(status: int) -> None:  # os._exit ends the process on the spot: what is not written is lost
        raise Exited(status, written.getvalue())

    with pytest.MonkeyPatch.context() as patch:
        for name in SERVE_ENVIRONMENT:
            patch.delenv(name, raising=False)
        patch.setattr(server, "serve", serve)
        patch.setattr(cli.os, "_exit", exit_now)
        patch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(written, buffer_size=1 << 16)))
        yield written


def test_a_stopped_server_ends_the_process_at_once_after_flushing_its_output():
    # Given a server that serves, is stopped and says so, without flushing
    def serve(*_args: object, **_kwargs: object) -> None:
        print("KeyGate local server stopped.")

    with serving(serve), pytest.raises(Exited) as exited:
        # When `keygate dev serve` returns from it
        cli.main(["dev", "serve"])
    # Then the process ends with status 0, and what the server printed was written before it ended
    assert exited.value.status == 0
    assert exited.value.written == b"KeyGate local server stopped.\n"


@pytest.mark.parametrize(("failure", "status", "message"), [
    (server.ServeError("Port 3000 is taken."), 1, "keygate: Port 3000 is taken.\n"),
    (EmulationError("The AWS emulator did not answer."), 1, "keygate: The AWS emulator did not answer.\n"),
    (KeyboardInterrupt(), 130, ""),
])
def test_a_server_that_fails_exits_through_main_with_its_status(capsys: pytest.CaptureFixture[str],
                                                                failure: BaseException, status: int, message: str):
    # Given a server that fails (cannot start, loses its emulation, is interrupted while starting)
    def serve(*_args: object, **_kwargs: object) -> None:
        raise failure

    with serving(serve):
        # When `keygate dev serve` runs
        returned = cli.main(["dev", "serve"])
    # Then main returns its status with the one-line error, as every other command's error, never os._exit(0)
    assert returned == status
    assert capsys.readouterr().err == message
