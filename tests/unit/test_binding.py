"""keygate.binding: the digest of a request's change is the change KeyGate will execute, whatever its
spelling or profile, and its summary is one sentence a person can confirm."""

from __future__ import annotations

import pytest

from keygate.binding import requested_change, summary
from keygate.profiles import gaiaex, zdex
from keygate.stepup import Action


def change_of(model, body: dict, action: Action = Action.CREATE):
    return requested_change(action, model.model_validate(body).domain())


def test_one_address_written_two_ways_is_one_change():
    assert change_of(gaiaex.CreateApiKeyRequest, {"ip_whitelist": ["10.0.0.1/32"]}).digest == \
        change_of(gaiaex.CreateApiKeyRequest, {"ip_whitelist": ["10.0.0.1"]}).digest


def test_a_zdex_body_and_a_gaiaex_body_for_the_same_update_are_one_change():
    gaiaex_change = change_of(gaiaex.UpdateApiKeyRequest, {"permissions": ["trade", "read"], "ip_whitelist": []},
                              Action.UPDATE)
    zdex_change = change_of(zdex.ZdexUpdateApiKeyRequest, {"permissions": ["READ_ONLY", "TRADE"], "ipWhitelist": []},
                            Action.UPDATE)
    assert gaiaex_change.digest == zdex_change.digest


@pytest.mark.parametrize("other", [
    {"label": "A2", "permissions": ["read", "trade"]},  # one more field
    {"label": "A3"},  # another value
    {},  # nothing
])
def test_any_other_change_has_another_digest(other: dict):
    rename = change_of(gaiaex.UpdateApiKeyRequest, {"label": "A2"}, Action.UPDATE)
    assert change_of(gaiaex.UpdateApiKeyRequest, other, Action.UPDATE).digest != rename.digest


def test_the_same_fields_for_another_action_are_another_change():
    assert requested_change(Action.REVOKE, None).digest != requested_change(Action.REVOKE_ALL, None).digest


def test_the_summary_of_a_create_says_everything_the_key_will_hold():
    change = change_of(gaiaex.CreateApiKeyRequest, {"label": "grid-bot", "permissions": ["read", "trade"],
                                                    "ip_whitelist": ["203.0.113.50"], "expires_days": 90})
    assert summary(change) == "Create API key 'grid-bot' with read, trade; IPs 203.0.113.50; expires in 90 days"


def test_the_summary_of_an_update_names_the_key_and_each_new_value():
    change = change_of(gaiaex.UpdateApiKeyRequest, {"ip_whitelist": [], "permissions": ["read", "trade"]},
                       Action.UPDATE)
    assert summary(change, target_label="B", target="kgk_b") == (
        "Change API key 'B' (kgk_b): IP whitelist to any IP; permissions to read, trade")


@pytest.mark.parametrize("action", list(Action))
def test_every_action_has_a_sentence_of_its_own(action: Action):
    sentence = summary(requested_change(action, None), target_label="x", target="t")
    assert sentence and not sentence.startswith("Confirm "), sentence
