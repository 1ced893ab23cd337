"""Proof that the installed build runs: the probe, the verdict, verification after changes."""
