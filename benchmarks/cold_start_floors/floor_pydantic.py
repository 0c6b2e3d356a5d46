"""Floor 2: floor 1 plus the team's rule that a pydantic model validates the environment.

The smallest such model (three of the settings the authorizer reads); KeyGate's
own Config has twenty fields and four validators.
"""

import os

import floor_aws
from pydantic import BaseModel, Field


class Settings(BaseModel):
    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    secret_name_prefix: str = Field(alias="SECRET_NAME_PREFIX")
    record_cache_ttl_seconds: float = Field(alias="RECORD_CACHE_TTL_SECONDS", default=5, ge=0, le=60)


def handler(event, context):
    Settings.model_validate(dict(os.environ))
    return floor_aws.serve(event)
