"""Rendering a notification: jinja2 templates (``templates/``) over the context the
notification keeps, to an email (subject, plain-text part, autoescaped HTML part) or an SMS.

Per template: ``<name>.txt`` (the text part; it sets ``subject``), ``<name>.html`` (extends
``_layout.html``) and ``<name>.sms.txt``. Every template has an SMS text, so any email that
fails for good can fall back to SMS. HTML autoescaping is by file extension; text parts are
not escaped (they are not HTML), and the SMTP library encodes their headers.

The delivery code is the one secret a notification carries: the context holds it sealed
(``delivery_code_sealed``, Fernet via ``waybill.common.sealing``) and only ``render_*`` unseals
it, into a local mapping that lives as long as the call. It is never written to the
database, a job payload, a log line or an API response in plain text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from waybill.common.sealing import Sealer

TEMPLATES = Path(__file__).with_name("templates")

# How a failed delivery's reason (CONTRACT.md § shipping, mark_failed) reads to a customer.
REASON_TEXT: Mapping[str, str] = {
    "RECIPIENT_ABSENT": "nobody was home",
    "ADDRESS_NOT_FOUND": "the courier could not find the address",
    "REFUSED": "the parcel was refused",
    "DAMAGED": "the parcel was damaged",
    "ACCESS_RESTRICTED": "the courier could not get access to the address",
    "WEATHER": "bad weather",
    "OTHER": "a problem on the way",
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, sealer: Sealer, directory: Path = TEMPLATES) -> None:
        self.sealer = sealer
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,  # a variable a template expects and lacks is a bug
            keep_trailing_newline=False,
        )

    def email(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        values = self._values(context)
        text = self.env.get_template(f"{template}.txt").make_module(values)
        subject = " ".join(str(getattr(text, "subject", "")).split())
        html = self.env.get_template(f"{template}.html").render(values, subject=subject)
        return RenderedEmail(subject=subject, text=str(text).strip() + "\n", html=html)

    def sms(self, template: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(f"{template}.sms.txt").render(self._values(context)).strip()

    def _values(self, context: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in context.items() if k != "delivery_code_sealed"}
        values.setdefault("reason", None)
        values["reason_text"] = REASON_TEXT.get(str(values["reason"]), REASON_TEXT["OTHER"])
        sealed = context.get("delivery_code_sealed")
        if sealed is not None:
            values["delivery_code"] = self._unseal(str(context["shipment_id"]), str(sealed))
        return values

    def _unseal(self, shipment_id: str, sealed: str) -> str:
        # Shipping seals "<shipment id>:<code>" (services/shipping codes.py): a token copied
        # onto another shipment's event does not unseal to a code for it.
        owner, _, code = self.sealer.unseal(sealed).partition(":")
        if owner != shipment_id:
            raise ValueError("delivery code sealed for another shipment")
        return code
