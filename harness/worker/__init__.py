"""Where the worker runs and how it starts: placement, limits, Docker, the broker, the share, what a run owns."""
