"""samconfig.toml: a dev (also the default) and a prod configuration that deploy the template as it is."""

import re
import tomllib
from pathlib import Path

import pytest

from keygate_dev import template

SAMCONFIG = tomllib.loads((Path(__file__).resolve().parents[2] / "samconfig.toml").read_text())
ENVIRONMENTS = {"default": "dev", "dev": "dev", "prod": "prod"}


def overrides(environment: str) -> dict[str, str]:
    text = SAMCONFIG[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in text.split())


@pytest.mark.parametrize(("environment", "stage"), sorted(ENVIRONMENTS.items()))
def test_each_environment_deploys_its_stage_with_every_required_parameter(environment, stage):
    parameters = template.load_template()["Parameters"]
    given = overrides(environment)
    # Every override names a template parameter and matches its pattern
    for name, value in given.items():
        assert name in parameters, name
        pattern = parameters[name].get("AllowedPattern")
        assert pattern is None or re.fullmatch(pattern, value), (name, value)
    # And every parameter without a default is given
    assert {name for name, spec in parameters.items() if "Default" not in spec} <= set(given)
    assert given["Stage"] == stage
    assert SAMCONFIG[environment]["global"]["parameters"]["stack_name"] == f"keygate-{stage}"


def test_dev_is_the_default():
    assert SAMCONFIG["dev"] == SAMCONFIG["default"]


def test_only_prod_turns_on_deletion_protection():
    # The table's DeletionProtectionEnabled follows IsProd, i.e. Stage == prod
    assert template.load_template()["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    assert [environment for environment in ENVIRONMENTS if overrides(environment)["Stage"] == "prod"] == ["prod"]


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_builds_are_never_cached(environment):
    # SAM's build cache hashes a layer's ContentUri only, and CommonLayer also copies kg1 from sdk/kg1:
    # a cached build would ship a stale kg1 after a change there
    assert SAMCONFIG[environment]["build"]["parameters"]["cached"] is False
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "sam build --parallel --no-cached" in makefile and "--cached" not in makefile.replace("--no-cached", "")
