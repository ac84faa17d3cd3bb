"""Evidence to record, purely: executions, outcomes, attribution of kills, findings and figures."""
