"""A cgroup v2 test lane: a Debian VM under qemu (software emulation), built once per machine.

The machines here mount the memory controller on cgroup v1 only; the v2 backend meets a real v2
kernel here. `python -m vmlane tests` runs the backend's tests inside, as root and as a user with a
delegated subtree.
"""
