"""oomlab: real Celery workers under real memory limits, measured exactly."""

__version__ = "0.1.0"
