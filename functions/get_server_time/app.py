"""GET /v1/time (no auth): server time in milliseconds, for bots to sync clocks."""

import time

from keygate import api


@api.api_handler
def handler(event):
    return api.json_response(200, {"server_time": time.time_ns() // 1_000_000})
