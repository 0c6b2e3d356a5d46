"""GET /v1/trade/api-keys/{api_key}/audit?limit=: lifecycle log, newest first."""

from keygate import api, routes, wiring


@api.route_handler(routes.GET_API_KEY_AUDIT, wiring.management)
def handler(request, app):
    return app.lifecycle.get_api_key_audit(request.user_id, request.path("api_key"), limit=request.query["limit"])
