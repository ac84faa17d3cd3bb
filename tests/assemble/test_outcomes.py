from oomlab.assemble.outcomes import classify
from oomlab.record.schema import Execution


def run(pid=1, finished=None):
    return Execution(pid=pid, started_mono=1.0, started_wall=1.0, start_rss_bytes=1, finished_mono=finished)


def test_outcomes():
    assert classify("SUCCESS", None, [run(finished=2.0)], False) == "succeeded"
    assert classify("FAILURE", "ValueError: x", [run(finished=2.0)], False) == "failed"
    lost = "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 4."
    assert classify("FAILURE", lost, [run()], True) == "killed"
    assert classify("STARTED", None, [run()], True) == "killed"  # attributed before the backend says so
    assert classify("STARTED", None, [run()], False) == "stuck"
    assert classify("PENDING", None, [run(1), run(2)], True) == "requeued"
    assert classify("PENDING", None, [], False) == "never_started"
