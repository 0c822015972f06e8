"""What the provider's news about an intent means for our payment.

One mapping for every source of news -- the charger's own answer, a webhook, the sync job's
query -- so they can never disagree. None: nothing to record yet (still processing).
"""

from __future__ import annotations

from waybill.payments.domain import payment as p
from waybill.payments.gateway import Intent, IntentStatus


def command_for(intent: Intent) -> p.Command | None:
    if intent.status == IntentStatus.succeeded:
        return p.Capture(provider_payment_id=intent.id)
    if intent.status == IntentStatus.processing:
        return p.MarkProcessing(provider_payment_id=intent.id)
    if intent.status == IntentStatus.requires_payment_method:
        error = intent.last_payment_error
        code = (error.code if error else None) or "payment_failed"
        reason = (error.message if error else None) or "the provider refused the payment"
        return p.Fail(code=code, reason=reason)
    return None
