"""GET /v1/time (no auth): server time in milliseconds, for bots to sync clocks."""

import time

from keygate import api, routes
from keygate.models import ServerTime


@api.route_handler(routes.GET_SERVER_TIME)
def handler(request):
    return ServerTime(server_time=time.time_ns() // 1_000_000)
