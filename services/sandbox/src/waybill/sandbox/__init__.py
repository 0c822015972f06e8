"""The sandbox: third parties simulated over real HTTP (docs/sandbox.md)."""
