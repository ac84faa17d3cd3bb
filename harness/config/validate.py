"""The rules a run's configuration must meet, as pure functions: each takes what the user gave and
returns the value to use, or raises BadInput (or ResultsUnwritable) with one sentence. They are
checked before any cgroup, broker or worker exists, so a bad value never reaches a run."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from oomlab.config.celery_safety import check_serializers
from oomlab.config.sizes import parse_size
from oomlab.errors import BadInput, ResultsUnwritable

_NAME_MAX = 255  # bytes in one path component (ext4, xfs, tmpfs)
_PATH_MAX = 4096
_RUN_DIR_NAME = 80  # a run id (time, scenario, hex) is appended to --results
# a replica's name: a host or pod name's characters (a Kubernetes pod name is at most 253), no space,
# no leading dash (it would read as a flag)
_REPLICA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,252}")


def memory_limit(given: str | None, default: str) -> tuple[str, int]:
    """The limit as written and in bytes; an empty --memory is refused, not taken as "the default"."""
    text = default if given is None else given
    if not text.strip():
        raise BadInput("--memory is empty; give a size such as 256MiB (or leave the option out)")
    try:
        return text, parse_size(text)
    except BadInput as error:
        raise BadInput(f"--memory {error.message}") from None


def replica_name(flag: str, name: str) -> str:
    """A replica's name (`agent --replica`, `run --fleet --replicas a,b`), or BadInput saying why not."""
    if not _REPLICA_NAME.fullmatch(name):
        raise BadInput(
            f"{flag}: {name!r} is not a replica name: letters, digits and . _ @ : - (a host or pod name), "
            f"starting with a letter or digit, up to 253 characters"
        )
    return name


def seconds(flag: str, value: float | None) -> float | None:
    """A duration option: positive and finite (NaN never fires, inf never ends), or None when not given."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{flag} must be a positive number of seconds, not {value}")
    return value


def rate(flag: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{flag} must be a positive, finite rate, not {value}")
    return value


def results_dir(path: str) -> str:
    """Where run directories are made: refused when it cannot hold one (a file, a name too long, a
    directory nobody may write), before the run starts."""
    if not path.strip():
        raise BadInput("--results is empty; give a directory for the run records")
    absolute = os.path.abspath(path)
    if len(os.fsencode(absolute)) + _RUN_DIR_NAME > _PATH_MAX or any(
        len(os.fsencode(part)) > _NAME_MAX for part in absolute.split(os.sep)
    ):
        raise BadInput(f"--results {path[:60]}…: the path is too long for a run directory under it")
    existing = absolute
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is" if existing == absolute else f"is under {existing}, which is"
        raise BadInput(f"--results {path} {where} a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ResultsUnwritable(f"--results {path}: {existing} is not writable (read-only or no permission)")
    return path


def _celery_options() -> dict[str, Any]:
    from celery.app.defaults import NAMESPACES, flatten

    return dict(flatten(NAMESPACES))


_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def celery_settings(given: dict[str, Any]) -> dict[str, Any]:
    """Celery settings: names from Celery's own table; a value from a command line (a string) typed
    as that table says (JSON for dicts and lists), a value a program passes checked against it;
    serializers json or msgpack only."""
    return {name: celery_setting(name, value) for name, value in given.items()}


def celery_setting_names(conf: dict[str, Any], where: str) -> None:
    """A scenario's CELERY_CONF (or a variant's) naming a setting Celery does not have: a typo that
    Celery itself would ignore, refused like an unknown --celery one."""
    options = _celery_options()
    for name in conf:
        if name not in options:
            raise BadInput(f"{where} sets {name!r}: Celery has no such setting{_close(name, options)}")


def _close(name: Any, options: dict[str, Any]) -> str:
    import difflib  # a misspelt name's suggestion only: a run that is spelt right never loads it

    close = difflib.get_close_matches(str(name), list(options), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def celery_setting(name: str, value: Any) -> Any:
    options = _celery_options()
    option = options.get(name)
    if option is None:
        hint = _close(name, options)
        raise BadInput(f"--celery {name}: Celery has no such setting{hint}; see Celery's configuration reference")
    kind = str(option.type)
    typed = _typed(name, value, kind) if isinstance(value, str) else _checked(name, value, kind)
    _check_serializers(name, typed)
    return typed


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "<class 'int'>": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list, tuple),
    "tuple": (list, tuple),
    "string": (str,),
    "str": (str,),
    "bytes": (str, bytes),
}


def _checked(name: str, value: Any, kind: str) -> Any:
    """A value a program passed (already typed): of the kind Celery's table gives, finite."""
    allowed = _PYTHON_TYPES.get(kind)
    wrong_bool = isinstance(value, bool) and kind not in ("bool", "any")
    if value is not None and allowed is not None and (not isinstance(value, allowed) or wrong_bool):
        raise BadInput(f"Celery setting {name}={value!r}: Celery takes a {kind} here")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"Celery setting {name}={value!r}: Celery takes a finite number here")
    return value


def _typed(name: str, text: str, kind: str) -> Any:
    """A command line's text as the kind Celery's table gives."""

    def refuse(what: str) -> BadInput:
        return BadInput(f"--celery {name}={text!r}: Celery takes {what} here")

    if text.lower() in ("null", "none"):
        return None
    if kind in ("string", "str", "bytes"):
        return text
    if kind in ("int", "<class 'int'>"):
        try:
            return int(text)
        except ValueError:
            raise refuse("a whole number") from None
    if kind == "float":
        try:
            number = float(text)
        except ValueError:
            raise refuse("a number of seconds") from None
        if not math.isfinite(number):
            raise refuse("a finite number")
        return number
    if kind == "bool":
        if text.lower() not in _BOOLEAN_WORDS:
            raise refuse("true or false")
        return _BOOLEAN_WORDS[text.lower()]
    try:
        value = json.loads(text)
    except ValueError:
        value = text if kind == "any" else [item for item in text.split(",") if item] if kind != "dict" else None
    if kind == "dict" and not isinstance(value, dict):
        raise refuse('a JSON object, e.g. {"visibility_timeout": 60}')
    if kind in ("list", "tuple") and not isinstance(value, list):
        raise refuse('a JSON list or comma-separated names, e.g. ["json"]')
    if isinstance(value, float) and not math.isfinite(value):
        raise refuse("a finite number")
    return value


def _check_serializers(name: str, value: Any) -> None:
    check_serializers({name: value}, "--celery")


def param_value(name: str, default: Any, text: str) -> Any:
    """A scenario parameter from `--param NAME=TEXT`, typed like its default, checked before the
    scenario sees it: finite numbers, non-empty lists."""
    kind = type(default)

    def refuse(what: str = "") -> BadInput:
        return BadInput(f"parameter {name}={text!r} is not a valid {kind.__name__}{what} (default {default!r})")

    try:
        if kind is bool:
            if text.lower() not in _BOOLEAN_WORDS:
                raise refuse()
            return _BOOLEAN_WORDS[text.lower()]
        if kind in (list, tuple):
            items = [item.strip() for item in text.split(",") if item.strip()]
            if not items:
                raise refuse(": give one value or more, separated by commas")
            values = [param_value(name, default[0], item) for item in items] if default else items
            return values
        value = kind(text)
    except (ValueError, TypeError):
        raise refuse() from None
    if isinstance(value, float) and not math.isfinite(value):
        raise refuse(": it must be finite")
    return value
