"""GET /v1/trade/api-keys: the caller's keys, newest first, never a secret."""

from keygate import api, routes, wiring


@api.route_handler(routes.LIST_API_KEYS, wiring.management)
def handler(request, app):
    return app.lifecycle.list_api_keys(request.user_id)
