"""Verdicts on a finished run: the scenario's expectations, the invariants of every run, golden transcripts."""
