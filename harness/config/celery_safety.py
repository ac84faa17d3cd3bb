"""Celery settings that decide what code runs: serializers and the names Celery imports.

oomlab runs as root and consumes what others can publish to the broker (task events, results), so
every setting that names a serializer or an accepted content type is held to an allow-list
(json, msgpack, by name or MIME type), never a deny-list: pickle also goes by
`application/x-python-serialize`. A worker share's worker.json is data from another process: the
settings it may carry are a second allow-list, each with the JSON type it must have, so none of
them is a "module:Class" path Celery would import (a transport, a router, an annotation class).
"""

from __future__ import annotations

from typing import Any

from oomlab.errors import BadInput, NoPermission

SAFE_SERIALIZERS = frozenset({"json", "msgpack", "application/json", "application/x-msgpack"})
SERIALIZER_SETTINGS = ("task_serializer", "result_serializer", "event_serializer")
CONTENT_SETTINGS = ("accept_content", "result_accept_content")

_NUMBER = (int, float)
_SCALARS = (str, int, float, bool, type(None))
# what an attached run takes from worker.json: plain values only (a dict's values are scalars)
SHARE_SETTINGS: dict[str, tuple[type, ...]] = {
    **{name: (str,) for name in SERIALIZER_SETTINGS},
    **{name: (list, type(None)) for name in CONTENT_SETTINGS},
    "task_acks_late": (bool,),
    "task_acks_on_failure_or_timeout": (bool,),
    "task_reject_on_worker_lost": (bool,),
    "task_retry_on_worker_lost": (bool,),
    "task_track_started": (bool,),
    "task_ignore_result": (bool,),
    "task_time_limit": (*_NUMBER, type(None)),
    "task_soft_time_limit": (*_NUMBER, type(None)),
    "task_default_priority": (int, type(None)),
    "task_compression": (type(None),),  # a codec name is looked up, but none is needed to replay
    "result_compression": (type(None),),
    "result_expires": (*_NUMBER, type(None)),
    "result_extended": (bool,),
    "worker_prefetch_multiplier": (int,),
    "worker_max_tasks_per_child": (int, type(None)),
    "worker_max_memory_per_child": (int, type(None)),
    "worker_disable_prefetch": (bool,),
    "worker_send_task_events": (bool,),
    "worker_log_format": (str,),
    "worker_task_log_format": (str,),
    "broker_transport_options": (dict,),
    "result_backend_transport_options": (dict,),
    "broker_connection_retry_on_startup": (bool,),
    "broker_pool_limit": (int, type(None)),
}


def unsafe_serializer(settings: dict[str, Any]) -> tuple[str, Any] | None:
    """The first (setting, value) naming a serializer or content type other than json or msgpack."""
    for name, value in settings.items():
        if name in SERIALIZER_SETTINGS:
            given = [value]
        elif name in CONTENT_SETTINGS:
            if value is None:
                continue  # result_accept_content: None means "as accept_content"
            given = list(value) if isinstance(value, (list, tuple)) else [value]
        else:
            continue
        for item in given:
            if not isinstance(item, str) or item.lower() not in SAFE_SERIALIZERS:
                return name, item
    return None


def check_serializers(settings: dict[str, Any], where: str) -> None:
    """BadInput (one sentence) when a serializer or accepted content type is not json or msgpack."""
    if found := unsafe_serializer(settings):
        name, item = found
        raise BadInput(f"{where}: {name}={item!r} is refused; {_WHY}")


_WHY = "oomlab accepts only json or msgpack, since other serializers (pickle, yaml) run code sent through the broker"


def check_share_settings(settings: dict[str, Any], path: str) -> None:
    """The Celery settings in a worker share: only SHARE_SETTINGS, each of its JSON type (a dict's
    values plain scalars or lists of them), serializers allow-listed. NoPermission otherwise."""
    for name, value in settings.items():
        kinds = SHARE_SETTINGS.get(name)
        if kinds is None:
            raise NoPermission(
                f"refusing the Celery setting {name} from {path}: an attached run takes only plain worker "
                f"settings from a share ({', '.join(sorted(SHARE_SETTINGS))}); set it in the scenario instead"
            )
        plain = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if plain and isinstance(value, dict):
            plain = all(isinstance(key, str) and _plain(item) for key, item in value.items())
        if plain and isinstance(value, list):
            plain = all(isinstance(item, str) for item in value)
        if not plain:
            raise NoPermission(
                f"refusing the Celery setting {name} from {path}: {value!r} is not a plain value of its kind"
            )
    if found := unsafe_serializer(settings):
        name, item = found
        raise NoPermission(f"refusing the Celery setting {name} from {path}: {item!r} is refused; {_WHY}")


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, _SCALARS) for item in value)
    return isinstance(value, _SCALARS)
