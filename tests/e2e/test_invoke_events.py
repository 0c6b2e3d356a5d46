"""Every sample event in events/ through `keygate dev invoke`, as a developer runs it from a shell."""

from __future__ import annotations

import json
import subprocess  # nosec B404  # runs only this project's own commands, no shell
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from keygate_dev import events, jwks_server, template
from keygate_dev.emulation import AwsEmulation
from keygate_dev.identity import LocalIdentityProvider
from keygate_dev.server import local_parameters
from tests.support.local_server import KEYGATE, LocalServer, state_environment

EVENT_FILES = events.event_files()
# Each invocation is its own Python process; a few at once keep the suite short on two cores.
PARALLEL_INVOCATIONS = 2


def invoke(environment: dict[str, str], function_id: str, *event_paths: Path) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run([str(KEYGATE), "dev", "invoke", function_id, *map(str, event_paths)],  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                               env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, (function_id, completed.stderr)
    return completed


def events_by_function() -> dict[str, list[Path]]:
    grouped = defaultdict(list)
    for event_path in EVENT_FILES:
        grouped[events.expectation(event_path).function].append(event_path)
    return dict(grouped)


def assert_answer_matches_sidecar(event_path: Path, result: dict) -> None:
    plan = events.expectation(event_path)
    assert events.response_status(plan.function, result) == plan.status, (event_path.name, result)
    if plan.error_code is not None:
        assert events.response_fields(result)["error"]["code"] == plan.error_code, (event_path.name, result)


def test_every_event_through_keygate_dev_invoke_against_the_running_server(local_server: LocalServer):
    # Given the running local server, and every sample event grouped by the function it is for
    grouped = events_by_function()
    assert sum(map(len, grouped.values())) == len(EVENT_FILES) > 0
    # When each function's events are invoked from a second terminal (the running server holds the data)
    with ThreadPoolExecutor(PARALLEL_INVOCATIONS) as pool:
        outputs = list(pool.map(lambda item: (item[1], invoke(local_server.environment, item[0], *item[1])),
                                 grouped.items()))
    # Then each event's result gives the status its sidecar expects
    for event_paths, completed in outputs:
        printed = json.loads(completed.stdout)
        results = printed if len(event_paths) > 1 else {str(event_paths[0]): printed}
        assert set(results) == set(map(str, event_paths))
        for event_path in event_paths:
            assert_answer_matches_sidecar(event_path, results[str(event_path)])


def test_invoke_without_a_running_server_starts_its_own_emulation(tmp_path: Path):
    # Given no server for this state directory
    environment = state_environment(tmp_path / "state")
    # When an event that seeds data, writes and reads a JWKS is invoked
    event_path = events.EVENTS_DIR / "create_api_key.200.json"
    completed = invoke(environment, "CreateApiKeyFunction", event_path)
    # Then it ran against an in-process emulation started for the call, and printed the result alone
    assert_answer_matches_sidecar(event_path, json.loads(completed.stdout))
    assert not (tmp_path / "state" / "server.json").exists()


@pytest.mark.parametrize("arguments, message", [
    (["NoSuchFunction", "events/list_api_keys.200.json"], "No function 'NoSuchFunction'"),
    (["ListApiKeysFunction", "events/no-such-event.json"], "No event file"),
])
def test_invoke_mistakes_are_one_line_errors(tmp_path: Path, arguments: list[str], message: str):
    completed = subprocess.run([str(KEYGATE), "dev", "invoke", *arguments], env=state_environment(tmp_path / "s"),  # noqa: S603  # nosec B603  # argv of this project's own command, no shell
                               capture_output=True, text=True, timeout=120, cwd=events.template.ROOT)
    assert completed.returncode == 1
    assert completed.stderr.startswith("keygate: ") and message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_env_json_gives_sam_local_invoke_the_local_stage():
    # Given events/env.json, the --env-vars file for `sam local invoke` on a machine with Docker
    document = json.loads(events.ENV_VARS_PATH.read_text())
    # Then it has the shape SAM CLI reads: "Parameters" (every function) or a function's logical id
    assert set(document) <= {"Parameters", *template.function_ids()}, set(document)
    jwks_port = urlsplit(document["Parameters"]["SESSION_JWKS_URL"]).port
    # (the local JWKS as a container on the host's network reaches it: `keygate dev serve --jwks-port`)
    jwks_base = f"http://127.0.0.1:{jwks_port}"
    identity = LocalIdentityProvider()
    stage = local_parameters(identity, jwks_base + jwks_server.SESSION_PATH, jwks_base + jwks_server.STEP_UP_PATH)
    for scope, variables in document.items():
        for function_id in template.function_ids() if scope == "Parameters" else [scope]:
            # And every variable is one the function declares (SAM CLI ignores any other) with the local
            # stage's value, so the events' tokens from `keygate dev token/step-up` are trusted
            declared = template.function_environment(function_id, stage, AwsEmulation().resource_names())
            # (except the step-up issuer: the events carry the local IdP's step-up tokens, so they are run as
            # an external issuer's, as `keygate dev invoke` runs them)
            declared["STEP_UP_MODE"] = "external"
            assert {name: declared.get(name) for name in variables} == variables, function_id
