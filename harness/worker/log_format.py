"""How every oomlab worker logs: the first field is the wall-clock time the line was made, to the
microsecond, so the observer's WorkerLog can time Celery's own account of a dead child."""

LOG_FORMAT = "[%(created).6f %(levelname)s/%(processName)s] %(message)s"
