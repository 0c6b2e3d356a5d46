"""DELETE /v1/trade/api-keys/all: revoke every key of the caller (emergency)."""

from keygate import api, routes, wiring


@api.route_handler(routes.REVOKE_ALL_API_KEYS, wiring.management)
def handler(request, app):
    return app.lifecycle.revoke_all_api_keys(request.user_id, step_up=request.step_up, source_ip=request.source_ip)
