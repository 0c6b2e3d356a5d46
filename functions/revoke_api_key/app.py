"""DELETE /v1/trade/api-keys/{api_key}: revoke one key, irreversibly."""

from keygate import api, routes, wiring


@api.route_handler(routes.REVOKE_API_KEY, wiring.management)
def handler(request, app):
    return app.lifecycle.revoke_api_key(request.user_id, request.path("api_key"), step_up=request.step_up,
                                        source_ip=request.source_ip)
