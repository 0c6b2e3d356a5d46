"""Floor 3: floor 2 plus a pydantic model validating the environment (what the management functions add).

The smallest such model (three of the settings the authorizer reads); the signature authorizer itself
reads its settings with the standard library (keygate.config), so floor 2 is its floor.
"""

import os

import floor_logger_metrics
from pydantic import BaseModel, Field


class Settings(BaseModel):
    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    secret_name_prefix: str = Field(alias="SECRET_NAME_PREFIX")
    record_cache_ttl_seconds: float = Field(alias="RECORD_CACHE_TTL_SECONDS", default=5, ge=1, le=60)


def handler(event, context):
    Settings.model_validate(dict(os.environ))
    return floor_logger_metrics.handler(event, context)
