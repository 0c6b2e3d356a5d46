"""POST /v1/admin/revocations (AWS_IAM): the security team revokes a user's key, or all of them, with a reason."""

from keygate import api, wiring
from keygate.records import AuditEvent
from keygate.routes import OPERATOR_REVOKE


@api.route_handler(OPERATOR_REVOKE, composition=wiring.management)
def handler(request, app):
    body = request.body
    revoked = app.lifecycle.revoke_for_security(body.user_id, body.api_key, event=AuditEvent.KEY_REVOKED_OPERATOR,
                                                source_ip=request.source_ip, reason=body.reason,
                                                operator=request.user_id)
    return OPERATOR_REVOKE.response_model(user_id=body.user_id, revoked=revoked, operator=request.user_id)
