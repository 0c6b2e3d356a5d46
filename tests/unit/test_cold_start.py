"""keygate.cold_start: a handler module's imports run without the cyclic garbage collector, then everything it
tracks is frozen out of later collections (docs/architecture.md, "Cold start")."""

import gc

import pytest

from keygate.cold_start import frozen_imports


@pytest.fixture
def collector():
    """The collector enabled or not as this test found it, afterwards, and nothing frozen (what was frozen before the
    test is thawed too)."""
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_block_runs_without_collection_and_what_it_built_is_frozen(collector):
    # Given the collector enabled, nothing frozen
    gc.enable()
    gc.unfreeze()
    # When a block builds objects the collector tracks
    with frozen_imports():
        paused = not gc.isenabled()
        built = [{"a module's": [index]} for index in range(1000)]
    # Then it ran without collection, and afterwards they are frozen (out of what the collector looks at) and the
    # collector runs again
    assert paused
    assert not any(tracked is built for tracked in gc.get_objects())
    assert gc.get_freeze_count() >= len(built)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector):
    # Given the collector disabled (as a caller may have it)
    gc.disable()
    # When a block runs
    with frozen_imports():
        pass
    # Then it is still disabled
    assert not gc.isenabled()


def test_a_failed_block_is_not_frozen_and_the_collector_runs_again(collector):
    # Given the collector enabled, nothing frozen
    gc.enable()
    gc.unfreeze()
    # When the block raises (an import that fails)
    with pytest.raises(ImportError, match="no such module"), frozen_imports():
        built = [{"half an import's": [index]} for index in range(1000)]
        raise ImportError("no such module")
    # Then the error reaches the caller, nothing was frozen, and the collector runs again
    assert any(tracked is built for tracked in gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
