"""The notifier domain: pure rules (no I/O, no framework)."""
