"""The Docker placement: the worker runs in a container with the memory limit; oomlab watches it
from the host (the container's memory cgroup, its processes in the host's pid namespace)."""
