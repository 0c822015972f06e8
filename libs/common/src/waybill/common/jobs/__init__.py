"""Leader-locked periodic jobs with a run-now hook (reservation expiry, payment sync, ...)."""

from waybill.common.jobs.periodic import PeriodicJob, lock_key

__all__ = ["PeriodicJob", "lock_key"]
