"""Delivery codes: a new 6-digit code per ``ship``/``retry_delivery``/``reset-code``, kept only
as a keyed hash for the check and sealed for the notifier (``waybill.common.sealing``).

The sealed text binds the code to its shipment (``<shipment id>:<code>``), so a token copied
onto another shipment's event does not unseal to a valid code for it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from waybill.common.sealing import Sealer
from waybill.shipping.domain.shipment import IssuedCode


@dataclass(frozen=True)
class DeliveryCodes:
    sealer: Sealer

    def issue(self, shipment_id: str) -> IssuedCode:
        code = f"{secrets.randbelow(10**6):06d}"
        return IssuedCode(
            code_hash=self.hash_of(shipment_id, code),
            sealed=self.sealer.seal(f"{shipment_id}:{code}"),
        )

    def hash_of(self, shipment_id: str, code: str) -> str:
        return self.sealer.keyed_hash(code.strip(), salt=shipment_id)

    def unseal(self, shipment_id: str, sealed: str) -> str:
        """The code in ``sealed`` (the notifier's side; tests use it to play the customer)."""
        owner, _, code = self.sealer.unseal(sealed).partition(":")
        if owner != shipment_id:
            raise ValueError("delivery code sealed for another shipment")
        return code
