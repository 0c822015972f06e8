"""Background work of the payments service: the charges queue's worker and the payment-sync
periodic job."""
