"""What the agent's probe keeps of a task's message for a dead letter: Celery's own shape only (a raw
message may carry any JSON as its arguments; an int there raised TypeError into the worker's log)."""

from __future__ import annotations

import oomlab.probe.agent_hooks as hooks


class _Request:
    headers = {"h": 1}
    delivery_info = {"routing_key": "shop.q"}


class _Task:
    name = "shop.resize"
    request = _Request()


def test_a_message_keeps_its_arguments_only_in_celerys_shape(monkeypatch):
    kept: list[dict] = []
    monkeypatch.setattr(hooks, "emit", lambda event, **fields: kept.append(fields["message"]))
    hooks._message("a", _Task, (1, 2), {"k": 3})
    hooks._message("b", _Task, None, None)
    hooks._message("c", _Task, 5, None)
    hooks._message("d", _Task, [1], "x")
    assert kept[0] == {
        "name": "shop.resize",
        "args": [1, 2],
        "kwargs": {"k": 3},
        "headers": {"h": 1},
        "queue": "shop.q",
    }
    assert (kept[1]["args"], kept[1]["kwargs"]) == ([], {})
    for odd in kept[2:]:
        assert odd["args"] is None and odd["kwargs"] is None and "not a list and a mapping" in odd["note"]
