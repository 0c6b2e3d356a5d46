"""POST /v1/trade/passkeys: register a passkey (the first after a fresh sign-in, others after a step-up)."""

from keygate import api, routes
from keygate.stepup import HEADER
from keygate.stepup_models import PasskeyCreated
from keygate.stepup_service import passkey_functions


@api.route_handler(routes.REGISTER_PASSKEY, composition=passkey_functions)
def handler(request, app):
    passkey = app.register(request.user_id, request.body.credential, label=request.body.label,
                           auth_time=request.authorizer.get("auth_time"),
                           step_up_token=request.headers.get(HEADER.lower()), source_ip=request.source_ip)
    return PasskeyCreated(passkey_id=passkey.credential_id, label=passkey.label, created_at=passkey.created_at)
