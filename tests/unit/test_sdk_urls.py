"""The SDK opens only http(s) URLs: urllib would also open file: and ftp: URLs."""

import urllib.request

import pytest

from keygate import keys
from keygate_client import ServerClock, cli


@pytest.fixture
def nothing_is_opened(monkeypatch):
    opened = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: opened.append(args))
    return opened


@pytest.mark.parametrize("api_root", ["file:///etc", "ftp://example.com/prod", "/prod"])
def test_clock_sync_refuses_an_api_root_that_is_not_http(api_root, nothing_is_opened):
    # Given an API root that is not an http(s) URL
    # When the clock is synced against it
    # Then it is refused before anything is opened
    with pytest.raises(ValueError, match="not an http"):
        ServerClock.sync(api_root)
    assert nothing_is_opened == []


def test_send_to_a_file_url_is_a_usage_error(monkeypatch, nothing_is_opened, capsys):
    # Given a signing key in the environment
    monkeypatch.setenv(cli.KEY_ENV, keys.new_key_id("kgk_"))
    monkeypatch.setenv(cli.SECRET_ENV, keys.new_secret())
    # When keygate-sign is asked to send a request to a file: URL
    with pytest.raises(SystemExit) as exited:
        cli.main(["file:///etc/passwd", "--send"])
    # Then it stops with a usage error naming the problem, and opens nothing
    assert exited.value.code == cli.EXIT_USAGE
    assert "not an http(s) URL" in capsys.readouterr().err
    assert nothing_is_opened == []
