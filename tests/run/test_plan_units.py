"""The pure parts of a plan run's plan: calls made on demand, the order they are sent in, the
default timeout that grows with them, a lazy plan's mistakes said as the scenario's, and a streamed
plan's sending (each call at its time, never more than the window outstanding). No worker."""

from __future__ import annotations

import pytest
from oomlab.config.load_shapes import PLAN, LoadShape
from oomlab.config.plan_calls import PlanCalls, call_names, in_time_order, plan_timeout, task_count
from oomlab.config.scenario import Plan, TaskCall, check_plan
from oomlab.errors import ScenarioFailed
from oomlab.run.load.book import Book
from oomlab.run.load.schedule import Scheduler
from oomlab.run.plan import sent_calls


def _call(index: int) -> TaskCall:
    return TaskCall("t.run", (index,), at=float(index // 3), label=f"call {index}")


def test_plan_calls_are_a_sequence_made_on_demand_and_read_again():
    made: list[int] = []

    def make(index: int) -> TaskCall:
        made.append(index)
        return _call(index)

    calls = PlanCalls(5, make)
    assert len(calls) == 5 and made == []  # nothing made until read
    assert calls[4] == _call(4) and calls[-1] == _call(4) and calls[1:3] == [_call(1), _call(2)]
    assert list(calls) == list(calls) == [_call(i) for i in range(5)]
    with pytest.raises(IndexError):
        calls[5]


def test_a_list_is_sent_in_time_order_and_a_lazy_plan_in_its_own():
    late, early = TaskCall("a", at=2.0), TaskCall("b", at=1.0)
    assert list(in_time_order([late, early])) == [early, late]
    assert list(in_time_order(PlanCalls(2, lambda i: (late, early)[i]))) == [late, early]
    assert call_names(PlanCalls(1000, lambda i: TaskCall(f"t{i % 3}"))) == ["t0", "t1", "t2"]


def test_the_default_timeout_grows_with_the_tasks():
    assert plan_timeout(60.0, 8, 2) == 60.0  # a small plan keeps what the scenario states
    assert plan_timeout(60.0, 50_000, 2) == 25_000.0  # not the 60 s written for eight tasks
    assert plan_timeout(60.0, 1_000_000, 4) == 250_000.0
    # a chain's links are tasks too: a list's counted call by call, a lazy plan's as its first call's
    chain = TaskCall("a", then=(TaskCall("b", then=(TaskCall("c"),)),))
    assert task_count([chain, TaskCall("a")]) == 4 and task_count(()) == 0
    assert task_count(PlanCalls(10**6, lambda i: chain)) == 3 * 10**6 and task_count(PlanCalls(0, _call)) == 0


def test_a_lazy_plans_mistakes_are_the_scenarios():
    check_plan("ok", Plan(PlanCalls(10**9, _call)))  # a billion calls checked by their first: nothing made
    with pytest.raises(ScenarioFailed, match="made a str as call 0, not a TaskCall"):
        check_plan("odd", Plan(PlanCalls(3, lambda i: "x")))  # type: ignore[arg-type, return-value]
    with pytest.raises(ScenarioFailed, match="returned PlanCalls of -1 calls"):
        check_plan("neg", Plan(PlanCalls(-1, _call)))

    def broken(index: int) -> TaskCall:
        if index == 2:
            raise KeyError("size")
        return _call(index)

    with pytest.raises(ScenarioFailed, match="scenario wobbly failed making call 2 of its plan: KeyError"):
        list(sent_calls(Plan(PlanCalls(4, broken)), "wobbly"))


class _Sends:
    """What the scheduler hands to the sender, kept to be looked at (the publishing is not under test)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.due: set[float | None] = set()

    def submit(self, sends) -> None:
        self.sent += [send.call.label for send in sends]
        self.due |= {send.due for send in sends}


class _Depth:
    def read(self) -> None:
        return None


def test_a_streamed_plan_sends_each_call_at_its_time_within_the_window(tmp_path):
    book = Book(str(tmp_path), float("inf"), lambda _: None)
    sends = _Sends()
    shape = LoadShape(PLAN, None, in_flight=2, tasks=7)
    scheduler = Scheduler(shape, book, sends, _Depth())  # type: ignore[arg-type]
    scheduler.begin(sent_calls(Plan(PlanCalls(7, _call)), "s"), "the plan")
    scheduler.send(0.0)
    assert sends.sent == ["call 0", "call 1"]  # three are due at 0 s; the window holds two
    book.final(next(iter(book.flights.values())), "succeeded", "SUCCESS", None, book.start, None)
    scheduler.send(0.5)
    assert sends.sent[-1] == "call 2" and len(book.flights) == 2
    for flight in list(book.flights.values()):
        book.final(flight, "succeeded", "SUCCESS", None, book.start, None)
    scheduler.send(0.9)
    assert len(sends.sent) == 3 and scheduler.waiting == _call(3)  # due at 1 s: not sent early
    assert scheduler.wake(100.0, 100.5) == 101.0
    scheduler.send(1.0)
    assert sends.sent[-2:] == ["call 3", "call 4"] and not scheduler.sending_done
    for at in (2.0, 3.0):
        for flight in list(book.flights.values()):
            book.final(flight, "succeeded", "SUCCESS", None, book.start, None)
        scheduler.send(at)
    assert sends.sent == [f"call {i}" for i in range(7)] and scheduler.sending_done
    assert sends.due == {None}  # a plan has no open-loop schedule: no send is "late" for waiting on the window
    book.stream.close()


def test_a_load_run_of_a_lazy_plan_reads_it_round_after_round():
    import itertools
    from types import SimpleNamespace

    from oomlab.config.load_mix import call_source

    plan = Plan(PlanCalls(3, _call))
    scenario = SimpleNamespace(name="lazy", module=SimpleNamespace(), plan=lambda ctx: plan)
    calls, source = call_source(scenario, None, 0)  # type: ignore[arg-type]
    assert list(itertools.islice(calls, 7)) == [_call(i % 3) for i in range(7)]
    assert source == "the scenario's plan of 3 calls, repeated"


def test_a_chain_is_its_links_in_order_their_names_checked_and_sent_as_celerys_chain():
    from celery import Celery
    from kombu import Queue
    from oomlab.run.sending import chain_option

    last = TaskCall("t.store")
    chained = TaskCall("t.fetch", ("u",), then=(TaskCall("t.resize", (800,), then=(last,)), TaskCall("t.tag")))
    assert [call.task for call in chained.chained()] == ["t.resize", "t.store", "t.tag"]
    assert call_names([chained, _call(1)]) == ["t.fetch", "t.resize", "t.run", "t.store", "t.tag"]
    app = Celery("chain-units", set_as_current=False)
    [*rest, following] = chain_option(app, chained, "q.1")["chain"]  # the worker pops the next one last
    assert following["task"] == "t.resize" and following["args"] == (800,) and following["options"] == {"queue": "q.1"}
    assert [one["task"] for one in rest] == ["t.tag", "t.store"]
    assert chain_option(app, _call(1), "q.1") == {}  # no chain: send_task's own default
    [*_, by_queue] = chain_option(app, chained, Queue("q.2"))["chain"]  # a plan's replay holds a kombu Queue
    assert by_queue["options"] == {"queue": "q.2"}
    for wrong, said in [
        (("t.x",), "chains a str, not a TaskCall"),
        ([TaskCall("t.x"), 3], "chains an int, not a TaskCall"),
        ("t.x", "has then=a str, not a tuple of TaskCalls"),
    ]:
        with pytest.raises(ScenarioFailed, match=said):
            check_plan("s", Plan([TaskCall("t.run", then=wrong)]))  # type: ignore[arg-type]
    deep = TaskCall("t.end")
    for _ in range(101):
        deep = TaskCall("t.link", then=(deep,))
    with pytest.raises(ScenarioFailed, match="more than 100 calls deep"):
        check_plan("s", Plan([deep]))
    with pytest.raises(ScenarioFailed, match="chains a str"):  # a lazy plan's call is checked as it is made
        check_plan("s", Plan(PlanCalls(2, lambda i: TaskCall("t.run", then=("t.x",)))))  # type: ignore[arg-type]
