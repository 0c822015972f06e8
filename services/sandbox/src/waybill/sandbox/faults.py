"""Fault knobs: what goes wrong, how often (docs/sandbox.md § Settings, ``/admin/faults``).

The knobs live in memory: they start from the settings, ``PUT /admin/faults`` changes them,
``POST /admin/faults/reset`` (or a restart) puts the settings back.
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from waybill.sandbox.settings import SandboxSettings

T = TypeVar("T")


class Fault(StrEnum):
    """How a provider API request goes wrong (the ``fault`` of ``/admin/requests``)."""

    error = "error"  # 500, no effect
    reset = "reset"  # connection closed without an answer, no effect
    timeout = "timeout"  # effect done, answer held back for sandbox_hang_s
    rate_limit = "rate_limit"  # 429 with Retry-After, no effect


class Faults(BaseModel):
    """The current knobs (the body of ``GET /admin/faults``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0.0)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    reset_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    rate_limit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    retry_after_s: int = Field(default=1, ge=0)
    webhook_delay_s: float = Field(default=0.0, ge=0.0)
    webhook_drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    webhook_duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sms_latency_ms: float = Field(default=0.0, ge=0.0)
    sms_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sms_rate_limit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sms_retry_after_s: int = Field(default=1, ge=0)
    smtp_latency_ms: float = Field(default=0.0, ge=0.0)
    smtp_temporary_reject_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    smtp_permanent_reject_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Counted faults: the next N SMS requests answer 500, the next N recipients get a 451.
    # A test that needs "refused once, then sent" uses these instead of a rate it must race
    # to turn off before the client's retries run out.
    sms_fail_next: int = Field(default=0, ge=0)
    smtp_reject_next: int = Field(default=0, ge=0)

    @classmethod
    def from_settings(cls, settings: SandboxSettings) -> Faults:
        return cls(
            latency_ms=settings.sandbox_latency_ms,
            error_rate=settings.sandbox_error_rate,
            reset_rate=settings.sandbox_reset_rate,
            timeout_rate=settings.sandbox_timeout_rate,
            rate_limit_rate=settings.sandbox_rate_limit_rate,
            retry_after_s=settings.sandbox_retry_after_s,
            webhook_delay_s=settings.sandbox_webhook_delay_s,
            webhook_drop_rate=settings.sandbox_webhook_drop_rate,
            webhook_duplicate_rate=settings.sandbox_webhook_duplicate_rate,
            sms_latency_ms=settings.sandbox_sms_latency_ms,
            sms_error_rate=settings.sandbox_sms_error_rate,
            sms_rate_limit_rate=settings.sandbox_sms_rate_limit_rate,
            sms_retry_after_s=settings.sandbox_sms_retry_after_s,
            smtp_latency_ms=settings.sandbox_smtp_latency_ms,
            smtp_temporary_reject_rate=settings.sandbox_smtp_temporary_reject_rate,
            smtp_permanent_reject_rate=settings.sandbox_smtp_permanent_reject_rate,
        )


class FaultsUpdate(BaseModel):
    """``PUT /admin/faults``: any subset of the knobs; out-of-range values are a 422.

    Strict (no ``"0"`` or ``false`` for a number) and bounded, so the schema says exactly what
    is accepted (the fuzzer in .ci/fuzz checks it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    latency_ms: float | None = Field(default=None, ge=0.0, le=600_000.0)
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    reset_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    timeout_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    rate_limit_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    retry_after_s: int | None = Field(default=None, ge=0, le=86_400)
    webhook_delay_s: float | None = Field(default=None, ge=0.0, le=86_400.0)
    webhook_drop_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    webhook_duplicate_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    sms_latency_ms: float | None = Field(default=None, ge=0.0, le=600_000.0)
    sms_error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    sms_rate_limit_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    sms_retry_after_s: int | None = Field(default=None, ge=0, le=86_400)
    smtp_latency_ms: float | None = Field(default=None, ge=0.0, le=600_000.0)
    smtp_temporary_reject_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    smtp_permanent_reject_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    sms_fail_next: int | None = Field(default=None, ge=0, le=1_000_000)
    smtp_reject_next: int | None = Field(default=None, ge=0, le=1_000_000)


class SmtpVerdict(StrEnum):
    """What the SMTP server answers one recipient (RCPT TO)."""

    accept = "250 2.1.5 OK"
    temporary = "451 4.3.0 Temporary failure (sandbox fault), try again later"
    permanent = "550 5.1.1 Mailbox unavailable (sandbox fault)"


class FaultKnobs:
    """The live knobs and the dice: one instance per process, shared by API and webhooks."""

    def __init__(self, settings: SandboxSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()  # a simulation, not security
        self.current = Faults.from_settings(settings)

    def update(self, change: FaultsUpdate) -> Faults:
        self.current = self.current.model_copy(update=change.model_dump(exclude_none=True))
        return self.current

    def reset(self) -> Faults:
        self.current = Faults.from_settings(self._settings)
        return self.current

    def draw_request_fault(self, sms: bool = False) -> Fault | None:
        """At most one fault per request; the rates are slices of one draw (capped at 1).

        The SMS provider has its own rates (errors and 429s only), so a test that makes the
        payment API fail does not also make every customer SMS fail."""
        faults = self.current
        if sms and faults.sms_fail_next > 0:
            self.current = faults.model_copy(update={"sms_fail_next": faults.sms_fail_next - 1})
            return Fault.error
        rates = (
            ((Fault.error, faults.sms_error_rate), (Fault.rate_limit, faults.sms_rate_limit_rate))
            if sms
            else (
                (Fault.error, faults.error_rate),
                (Fault.reset, faults.reset_rate),
                (Fault.timeout, faults.timeout_rate),
                (Fault.rate_limit, faults.rate_limit_rate),
            )
        )
        return _slice(self._rng.random(), rates)

    def draw_smtp_verdict(self) -> SmtpVerdict:
        """One recipient's answer: temporary, permanent or accepted (slices of one draw)."""
        faults = self.current
        if faults.smtp_reject_next > 0:
            next_count = faults.smtp_reject_next - 1
            self.current = faults.model_copy(update={"smtp_reject_next": next_count})
            return SmtpVerdict.temporary
        verdict = _slice(
            self._rng.random(),
            (
                (SmtpVerdict.temporary, faults.smtp_temporary_reject_rate),
                (SmtpVerdict.permanent, faults.smtp_permanent_reject_rate),
            ),
        )
        return verdict or SmtpVerdict.accept

    def webhook_dropped(self) -> bool:
        return self._rng.random() < self.current.webhook_drop_rate

    def webhook_copies(self) -> int:
        return 2 if self._rng.random() < self.current.webhook_duplicate_rate else 1


def _slice(roll: float, rates: tuple[tuple[T, float], ...]) -> T | None:
    edge = 0.0
    for outcome, rate in rates:
        edge += rate
        if roll < edge:
            return outcome
    return None
