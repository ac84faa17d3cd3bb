"""Gate thresholds from `[tool.oomlab.gate]` in pyproject.toml:

[tool.oomlab.gate]
fail = ["peak:10%"]                      # every task
[tool.oomlab.gate.tasks]
"shop.tasks.resize" = ["peak:+16MiB"]    # this task instead of the default
"""

from __future__ import annotations

import os
import sys

from oomlab.errors import BadInput
from oomlab.record.printable import printable_field
from oomlab.record.reading import read_regular
from oomlab.trust import untrusted_reason
from oomlab.workflows.gate.thresholds import LoadThreshold, Threshold, parse_threshold

MAX_PYPROJECT_BYTES = 1024 * 1024


def read_gate_settings(
    pyproject: str = "pyproject.toml", ignored: list[str] | None = None
) -> tuple[list[Threshold | LoadThreshold], dict[str, list[Threshold | LoadThreshold]]]:
    """The thresholds `pyproject` sets (none when it is not there). It is read only from a trusted
    directory: the default is the working directory's, and a pyproject.toml another user left in
    /tmp could loosen the gate; one elsewhere is ignored, said in `ignored`. Read as a regular file
    of at most 1 MiB (a FIFO or /dev/zero there is one sentence, not a hang)."""
    if not os.path.lexists(pyproject):
        return [], {}
    reason = untrusted_reason(os.path.dirname(os.path.abspath(pyproject)))
    if reason is not None:
        if ignored is not None:
            ignored.append(f"{printable_field(pyproject)} ignored: its directory is not trusted ({reason})")
        return [], {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib

    try:
        document = tomllib.loads(read_regular(pyproject, MAX_PYPROJECT_BYTES).decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{pyproject} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise BadInput(f"{pyproject} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:  # larger than the cap
        raise BadInput(f"{pyproject} cannot be read: {exc}") from None
    table = document
    for key, where in (("tool", "[tool]"), ("oomlab", "[tool.oomlab]"), ("gate", "[tool.oomlab.gate]")):
        table = table.get(key, {})
        if not isinstance(table, dict):
            raise BadInput(f"{pyproject}: {where} must be a table, not {type(table).__name__} {table!r}")
    default = [parse_threshold(t) for t in _texts(table.get("fail", []), "fail")]
    tasks = table.get("tasks", {})
    if not isinstance(tasks, dict):
        raise BadInput(f"{pyproject}: [tool.oomlab.gate.tasks] must be a table of task name = thresholds")
    per_task = {name: [parse_threshold(t) for t in _texts(texts, name)] for name, texts in tasks.items()}
    return default, per_task


def _texts(value: object, where: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadInput(f'[tool.oomlab.gate] {where} must be a threshold string or a list of them, e.g. ["peak:10%"]')
    return values
