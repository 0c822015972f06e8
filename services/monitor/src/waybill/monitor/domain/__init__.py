"""The monitor's rules: its errors and the dead-letter lifecycle."""
