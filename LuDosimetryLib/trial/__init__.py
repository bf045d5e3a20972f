"""Clinical-trial endpoints from patients' ledgers: follow-up schema, DLTs and escalation, response
rates, adverse events, PROMs, survival (see docs/trial.md)."""
