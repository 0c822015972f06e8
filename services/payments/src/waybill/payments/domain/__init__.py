"""The payment aggregate: pure decide/evolve rules, no I/O."""
