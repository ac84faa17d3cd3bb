"""The lane's failures, each one sentence and its own exit code (a CI lane fails, never skips)."""


class LaneError(Exception):
    exit_code = 1


class VmUnavailable(LaneError):
    """The image could not be built: a missing tool, kernel, package or wheel."""

    exit_code = 10


class VmNoResult(LaneError):
    """The VM did not boot, or its job did not finish and write its result back."""

    exit_code = 11
