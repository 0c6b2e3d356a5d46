"""PATCH /v1/trade/api-keys/{api_key}: change label, permissions or ip_whitelist."""

from keygate import api, routes, wiring


@api.route_handler(routes.UPDATE_API_KEY, wiring.management)
def handler(request, app):
    return app.lifecycle.update_api_key(request.user_id, request.path("api_key"), request.body,
                                        step_up=request.step_up, source_ip=request.source_ip)
