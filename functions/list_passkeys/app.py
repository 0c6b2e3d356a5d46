"""GET /v1/trade/passkeys: the caller's passkeys and their audit."""

from keygate import api, routes
from keygate.stepup_service import passkey_functions


@api.route_handler(routes.LIST_PASSKEYS, composition=passkey_functions)
def handler(request, app):
    return app.list(request.user_id)
