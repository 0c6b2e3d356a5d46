"""The README's copy-and-paste examples of both wire profiles, pasted into bash against a local server.

GaiaEx's runs against the defaults, ZDEX's against the ZDEX-style stack the README tells you to start
(tests/support/stack.py ZDEX_STYLE_STACK), so the examples cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import subprocess  # nosec B404  # runs bash on the README's own example, no shell injection surface

from keygate_dev import template
from tests.support.local_server import KEYGATE, LocalServer
from tests.support.stack import ZDEX_STYLE_STACK

README = (template.ROOT / "README.md").read_text()
EXAMPLE = re.compile(r"<!-- profile example: (\w+);[^>]*-->\n```sh\n(.*?)```", re.S)
EXAMPLES = dict(EXAMPLE.findall(README))
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def run_example(profile: str, server: LocalServer) -> list[dict]:
    """The example as pasted, its first line (`KG=...; BIN=...`) pointed at this server; one JSON per output line."""
    first_line, rest = EXAMPLES[profile].split("\n", 1)
    assert first_line.startswith("KG=http://127.0.0.1:3000; BIN="), first_line
    script = f"KG={server.base_url}; BIN={KEYGATE.parent}\n{rest}"
    completed = subprocess.run(["/bin/bash", "-euo", "pipefail", "-c", script], env=server.environment,  # noqa: S603  # nosec B603  # the README's example, run as a reader pastes it
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, (completed.stdout, completed.stderr)
    return [json.loads(line) for line in completed.stdout.splitlines()]


def test_the_readme_has_both_examples_and_tells_how_to_start_the_zdex_style_stack():
    assert set(EXAMPLES) == {"gaiaex", "zdex"}
    overrides = " ".join(f"{name}={value}" for name, value in ZDEX_STYLE_STACK.items())
    assert f'KEYGATE_PARAMETER_OVERRIDES="{overrides}" make dev' in README


def test_the_gaiaex_example_works_when_pasted(default_server: LocalServer):
    # Given the default stack, and the README's GaiaEx example
    # When it is pasted into a shell
    created, listed, updated, audit, revoked = run_example("gaiaex", default_server)
    # Then every answer has the GaiaEx doc's shape
    assert {"api_key", "api_secret", "label", "permissions", "ip_whitelist", "created_at", "expires_at",
            "message"} <= set(created)
    api_key = created["api_key"]
    assert created["permissions"] == ["read", "trade"] and created["ip_whitelist"] == ["203.0.113.50"]
    assert api_key in [key["api_key"] for key in listed["keys"]] and listed["count"] == len(listed["keys"])
    assert all("api_secret" not in key for key in listed["keys"])
    assert updated["success"] is True and updated["api_key"] == api_key
    assert sorted(updated["updated_fields"]) == ["ip_whitelist", "label"]
    assert audit["api_key"] == api_key and audit["count"] == len(audit["audit"]) == 2
    assert [entry["action"] for entry in audit["audit"]] == ["key_updated", "key_created"]
    assert all(ISO_TIME.match(entry["created_at"]) and entry["details"] for entry in audit["audit"])
    assert revoked["success"] is True and revoked["message"] == "API key revoked"


def test_the_zdex_example_works_when_pasted_against_the_zdex_style_stack(zdex_style_server: LocalServer):
    # Given the ZDEX-style stack (no step-up), and the README's ZDEX example
    # When it is pasted into a shell
    created, listed, updated, deleted = run_example("zdex", zdex_style_server)
    # Then every answer has the ZDEX doc's shape, and the id is not the key
    assert {"ok", "id", "apiKey", "secretKey", "label", "permissions", "message"} <= set(created)
    assert created["ok"] is True and created["permissions"] == ["READ_ONLY", "TRADE"]
    key_id = created["id"]
    assert key_id != created["apiKey"] and created["apiKey"] not in json.dumps(listed)
    (key,) = [key for key in listed["keys"] if key["id"] == key_id]
    assert {"id", "label", "keyPrefix", "permissions", "ipWhitelist", "isActive", "lastUsedAt", "createdAt"} <= set(key)
    assert created["apiKey"].startswith(key["keyPrefix"]) and key["isActive"] is True
    assert updated["ok"] is True and updated["id"] == key_id and updated["updatedFields"] == ["label"]
    assert deleted["ok"] is True and deleted["id"] == key_id
