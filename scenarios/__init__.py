"""Built-in scenarios: each a way a Celery worker runs out of memory, with its replay plan."""
