"""Background work of the orders service: periodic jobs (reservation expiry)."""
