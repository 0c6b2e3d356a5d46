"""GET /v1/trade/api-keys (GaiaEx) and GET /v1/api-keys (ZDEX): the caller's keys, newest first, never a secret."""

from keygate import api, wiring
from keygate.profiles import gaiaex, zdex


@api.route_handler(gaiaex.LIST_API_KEYS, zdex.LIST_API_KEYS, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.list_api_keys(request.user_id)
