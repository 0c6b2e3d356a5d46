"""DELETE /v1/trade/passkeys/{passkey_id}: remove one of the caller's passkeys (step-up passkeys:delete)."""

from keygate import api, routes
from keygate.stepup_models import PasskeyRemoved
from keygate.stepup_service import passkey_functions


@api.route_handler(routes.DELETE_PASSKEY, composition=passkey_functions)
def handler(request, app):
    removed = app.remove(request.user_id, request.path("passkey_id"), step_up=request.step_up,
                         source_ip=request.source_ip)
    return PasskeyRemoved(passkey_id=removed.credential_id)
