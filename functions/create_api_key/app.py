"""POST /v1/trade/api-keys: create a key; the secret is in this response only."""

from keygate import api, routes, wiring


@api.route_handler(routes.CREATE_API_KEY, wiring.management)
def handler(request, app):
    return app.lifecycle.create_api_key(request.user_id, request.body, step_up=request.step_up,
                                        source_ip=request.source_ip)
