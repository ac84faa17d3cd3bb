"""`oomlab replay`: a dead-lettered message sent again, under a new task id (the old id stays revoked
on every worker that received the revoke). The dead letter is removed once sent."""

from __future__ import annotations

import os
import sys
import uuid

from oomlab.agent.store import Store
from oomlab.errors import BadInput, ScenarioFailed
from oomlab.record.redact import safe_url
from oomlab.trust import app_top_name, check_importable, check_trusted_dir


def list_dead(redis_url: str, app_name: str, app_given: bool = True) -> list[tuple[str, str, str]]:
    """(task id, task name, "N kills") of each dead letter: the caller prints them, escaped."""
    app = user_app(app_name) if app_given else None
    store = Store(redis_url, app.main if app is not None else app_name)
    return [
        (task_id, _name(entry), f"{len(entry.get('kills') or [])} kills")
        for task_id, entry in sorted(store.dead().items())
    ]


def _name(entry: dict) -> str:
    """The message's task name, else the one its kills knew (a dead letter without its message)."""
    names = [(entry.get("message") or {}).get("name")] + [kill.get("task") for kill in entry.get("kills") or []]
    return next((str(name) for name in names if name), "unknown")


def _unsendable(task_id: str, entry: dict) -> str | None:
    """Why the dead letter cannot be sent, in one sentence; None when it can."""
    message = entry.get("message")
    if not message:
        why = entry.get("no_message") or "the agent that stored it kept no message"
        return f"the dead letter {task_id} has no message to send: {why}"
    if message.get("args") is None or not message.get("name"):
        why = message.get("note") or "its arguments were not kept"
        return f"the dead letter {task_id} cannot be sent: {why}"
    shapes: dict[str, type | tuple[type, ...]] = {
        "name": str,
        "args": list,
        "kwargs": (dict, type(None)),
        "queue": (str, type(None)),
    }
    wrong = [field for field, kinds in shapes.items() if not isinstance(message.get(field), kinds)]
    if wrong:  # the agent writes none of these: another hand did
        return f"the dead letter {task_id} cannot be sent: its {', '.join(wrong)} is not what the agent writes"
    return None


def _import_failure(app) -> str | None:
    """Why the user's app's task modules cannot be imported as the worker imports them at its start
    (then no task it registers is known), or None."""
    try:
        app.loader.import_default_modules()
    except Exception as exc:  # the user's own task modules: what the worker would meet at its start
        return f"importing --app {app.main}'s task modules failed ({type(exc).__name__}: {exc}); nothing was sent"
    return None


def _unregistered(app, task_id: str, message: dict) -> str | None:
    """Why the user's app would not run the dead letter's task: a name the app does not register
    (what is in the store anyone who can write to it chose)."""
    if message["name"] in app.tasks:
        return None
    return f"the dead letter {task_id} names {message['name']!r}, which --app {app.main} does not register; nothing was sent"


def user_app(name: str):
    """The Celery app `--app NAME` names as `celery -A NAME` would (the working directory on the
    path), or None when NAME is only an app's main name (no module of that name)."""
    from celery import Celery
    from celery.app.utils import find_app

    # as root, what another user can write is never imported: a module planted under the app's name
    top = app_top_name(name)
    check_trusted_dir(os.getcwd(), f"working directory --app {name} would be imported from")
    check_importable(os.getcwd(), name, f"--app {name}")  # and what in it bears the name
    sys.path.insert(0, os.getcwd())
    try:
        app = find_app(name)
    except ModuleNotFoundError as exc:
        if exc.name != top:
            raise ScenarioFailed(f"importing --app {name} failed: {exc}") from None
        return None
    except AttributeError:  # a module holding no app (`celery` itself): a main name
        return None
    except Exception as exc:
        raise ScenarioFailed(f"importing --app {name} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(os.getcwd())
    return app if isinstance(app, Celery) and app.main else None


def sender(app_name: str, given: bool, broker_url: str | None):
    """(the app to send with, its main name, whether it is the user's own): the user's app when --app
    names one, so its broker_url and routing are the default; else, only with --broker, a bare app of
    that main name. The dead letters' Redis is the result backend, not where the workers listen: never
    a guess."""
    from celery import Celery

    app = user_app(app_name) if given else None
    if app is not None:
        if broker_url:
            app.conf.broker_url = broker_url
        return app, app.main, True
    if not broker_url:
        named = f"--app {app_name} is no importable Celery app" if given else "no --app names the Celery app"
        raise BadInput(
            f"give --broker: the dead letters' Redis is the result backend, not where the workers listen, "
            f"and {named} to take broker_url from; nothing was sent"
        )
    return Celery(app_name, broker=broker_url, set_as_current=False), app_name, False


def replay(
    redis_url: str, broker_url: str | None, app_name: str, task_ids: list[str], app_given: bool = True
) -> list[tuple[str, str]]:
    app, app_name, users_app = sender(app_name, app_given, broker_url)
    store = Store(redis_url, app_name)
    dead = store.dead()
    missing = [task_id for task_id in task_ids if task_id not in dead]
    if missing:
        raise BadInput(f"no dead letter {missing[0]} for app {app_name!r} in {safe_url(redis_url)}")
    if users_app and (failure := _import_failure(app)):  # a bare app (--broker and a main name) knows no task
        raise BadInput(failure)
    for task_id in task_ids:  # all checked before any is sent
        problem = _unsendable(task_id, dead[task_id])
        if problem is None and users_app:
            problem = _unregistered(app, task_id, dead[task_id]["message"])
        if problem is not None:
            raise BadInput(problem)
    sent = []
    for task_id in task_ids:
        message = dead[task_id]["message"]
        new_id = str(uuid.uuid4())
        app.send_task(
            message["name"],
            args=message.get("args"),
            kwargs=message.get("kwargs"),
            task_id=new_id,
            queue=message.get("queue"),
            headers={"oomlab_replay_of": task_id},
        )
        store.forget(task_id)
        sent.append((task_id, new_id))
    return sent
