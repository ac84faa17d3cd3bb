"""A fleet run: the plan sent to a queue that N agent-wrapped replicas consume, one record assembled
from the events their agents publish on a Redis stream (no file shared with any replica)."""
