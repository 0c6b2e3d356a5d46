"""Key id and secret format (issue 2): recognisable prefixes, enough randomness, a checksum that refuses
a mistyped or forged id without any lookup (GitHub's token format is the model)."""

import math
import string

import pytest

from keygate import keys
from keygate.profiles.gaiaex import CreatedApiKey

PREFIX = "kgk_"


def test_a_key_id_has_the_prefix_at_least_128_random_bits_and_a_checksum():
    key_id = keys.new_key_id(PREFIX)
    assert key_id.startswith(PREFIX)
    assert len(key_id) == len(PREFIX) + keys.KEY_ID_RANDOM_CHARS + keys.CHECKSUM_CHARS
    assert keys.KEY_ID_RANDOM_CHARS * math.log2(62) >= 128
    assert keys.is_well_formed_key_id(key_id, PREFIX)


def test_a_secret_has_its_own_prefix_for_secret_scanners_and_at_least_256_random_bits():
    secret = keys.new_secret()
    assert secret.startswith(keys.SECRET_PREFIX) and keys.SECRET_PREFIX != PREFIX
    assert keys.SECRET_RANDOM_CHARS * math.log2(62) >= 256
    assert keys.is_well_formed_secret(secret)
    assert not keys.is_well_formed_key_id(secret, PREFIX)


def test_a_key_id_is_checked_against_the_prefix_asked_for_each_time():
    key_id = keys.new_key_id(PREFIX)
    # The answer for one prefix (remembered: the authorizer checks a bot's id on every request) ...
    assert keys.is_well_formed_key_id(key_id, PREFIX) and keys.is_well_formed_key_id(key_id, PREFIX)
    # ... is not the answer for another, and anything but a string is refused, not an error
    assert not keys.is_well_formed_key_id(key_id, "kgx_")
    assert not keys.is_well_formed_key_id(key_id[:-1] + ("A" if key_id[-1] != "A" else "B"), PREFIX)
    assert not keys.is_well_formed_key_id([key_id], PREFIX)  # type: ignore[arg-type]


def test_only_strings_of_a_key_ids_shape_are_remembered_never_a_secret():
    # A bot author who swaps key id and secret sends the secret in X-KG-API-KEY: refused, and not kept
    remembered = keys._key_id_has_valid_checksum.cache_info().currsize
    assert not keys.is_well_formed_key_id(keys.new_secret(), PREFIX)
    assert not keys.is_well_formed_key_id(keys.new_secret(), keys.SECRET_PREFIX)
    assert not keys.is_well_formed_key_id(PREFIX + "x" * 200, PREFIX)
    assert keys._key_id_has_valid_checksum.cache_info().currsize == remembered


def test_ids_are_not_repeated():
    assert len({keys.new_key_id(PREFIX) for _ in range(1000)}) == 1000


@pytest.mark.parametrize("position", range(len(PREFIX), len(PREFIX) + keys.KEY_ID_RANDOM_CHARS + keys.CHECKSUM_CHARS))
def test_any_one_mistyped_character_is_refused_by_the_checksum(position):
    key_id = keys.new_key_id(PREFIX)
    for replacement in (string.digits + string.ascii_letters)[:8]:
        if replacement != key_id[position]:
            typo = key_id[:position] + replacement + key_id[position + 1:]
            assert not keys.is_well_formed_key_id(typo, PREFIX), typo


@pytest.mark.parametrize("text", ["", "kgk_", "kgk_short", "xyz_" + "A" * 28, "kgk_" + "é" * 28,
                                  "kgk_" + "A" * 500, None, 12345])
def test_malformed_ids_are_refused(text):
    assert not keys.is_well_formed_key_id(text, PREFIX)


def test_the_listed_prefix_shows_the_prefix_and_six_characters():
    key_id = keys.new_key_id(PREFIX)
    assert keys.visible_prefix(key_id, PREFIX) == key_id[:len(PREFIX) + 6]


def test_the_created_key_answer_never_shows_its_secret_in_a_repr():
    # Given the one object that carries a secret out of the create path
    secret = keys.new_secret()
    created = CreatedApiKey.model_construct(api_key="kgk_x", api_secret=secret, label="bot")
    # Then printing it (a log line, a traceback's locals, a debugger) does not show the secret
    assert secret not in repr(created) and secret not in str(created)
    # While the answer itself still carries it
    assert created.model_dump()["api_secret"] == secret
