"""A task the worker sent is labelled with its sender: by name when the sender ran in this worker, by
its id when it did not (another worker's task), never silently unlabelled."""

from __future__ import annotations

from oomlab.observe.observers import observed_tasks


def sent_line(task_id: str, parent_id: str | None) -> dict:
    return {"ev": "sent", "pid": 1, "t": 1.0, "id": task_id, "name": "w.part", "parent_id": parent_id}


def test_a_worker_sent_task_names_its_sender_or_its_senders_id():
    sent = {
        "a": sent_line("a", "p-here"),
        "b": sent_line("b", "0123456789abcdef"),
        "c": sent_line("c", None),
    }
    tasks = observed_tasks({}, {}, {"p-here": "w.start"}, sent)
    labels = {task.id: task.label for task in tasks}
    assert labels == {"a": "sent by w.start", "b": "sent by task 01234567", "c": ""}
