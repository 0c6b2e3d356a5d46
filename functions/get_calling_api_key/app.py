"""GET /v1/trade/api-keys/self (signature authorizer): the calling key's restrictions."""

from keygate import api, routes, wiring


@api.route_handler(routes.GET_CALLING_API_KEY, composition=wiring.management)
def handler(request, app):
    return app.lifecycle.describe_calling_key(request.user_id, request.authorizer.get("key_id", ""))
