"""POST /v1/trade/step-up/options: a step-up challenge bound to the exact change, and its summary."""

from keygate import api, routes
from keygate.stepup_service import passkey_functions


@api.route_handler(routes.STEP_UP_OPTIONS, composition=passkey_functions)
def handler(request, app):
    return app.step_up_options(request.user_id, request.body)
