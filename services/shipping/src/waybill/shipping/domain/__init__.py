"""The shipping domain: pure deciders (no I/O, no framework). See STYLE.md § Decide, then evolve."""
