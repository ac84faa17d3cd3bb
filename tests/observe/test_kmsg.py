import pytest
from oomlab.observe.detectors.kmsg import KernelClock, KmsgParser

OOM_KILL = (
    "6,423,200417952,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    "oom_memcg=/a/oomlab/run1,task_memcg=/a/oomlab/run1,task=python3,pid=5448,uid=0"
)
KILLED = (
    "3,424,200417994,-;Memory cgroup out of memory: Killed process 5448 (python3) total-vm:323780kB, "
    "anon-rss:102016kB, file-rss:6616kB, shmem-rss:0kB, UID:0 pgtables:276kB oom_score_adj:0"
)


def test_kill_in_our_memcg_has_kernel_time_and_rss():
    parser = KmsgParser("/oomlab/run1")
    assert parser.feed(OOM_KILL, 200.5) is None
    kill = parser.feed(KILLED, 200.5)
    assert kill.pid == 5448 and kill.comm == "python3"
    assert kill.kernel_mono == 200.417994
    assert kill.rss_bytes == (102016 + 6616) * 1024
    assert not kill.group_kill


def test_kill_in_another_memcg_is_ignored():
    parser = KmsgParser("/oomlab/run2")
    parser.feed(OOM_KILL, 1.0)
    assert parser.feed(KILLED, 1.0) is None


def test_oom_group_kills_are_attributed_to_the_group():
    parser = KmsgParser("/oomlab/run1")
    parser.feed("6,500,300000000,-;Tasks in /a/oomlab/run1 are going to be killed due to memory.oom.group set", 1.0)
    kill = parser.feed(KILLED.replace("200417994", "300000100"), 1.0)
    assert kill.group_kill and kill.pid == 5448


def test_a_rate_limited_report_still_counts_when_the_pid_is_ours():
    """Seen in CI: under a burst of kills the kernel dropped the `oom-kill:` line (its OOM report is
    rate-limited) and printed only `Killed process`; the pid tells whose victim it was."""
    assert KmsgParser("/oomlab/run1").feed(KILLED, 1.0) is None  # no memcg named, pid unknown: not ours
    kill = KmsgParser("/oomlab/run1", known_pid={5448}.__contains__).feed(KILLED, 1.0)
    assert kill.pid == 5448 and not kill.group_kill
    other = KmsgParser("/oomlab/run2", known_pid={5448}.__contains__)
    other.feed(OOM_KILL, 1.0)  # the kernel named another memcg: the pid alone does not make it ours
    assert other.feed(KILLED, 1.0) is None


def test_the_kernel_clock_maps_a_stamp_between_its_two_measured_offsets():
    parser = KmsgParser("/oomlab/run1")
    parser.feed(OOM_KILL, 200.5)
    kill = parser.feed(KILLED, 200.5)
    assert kill.kernel_stamp == kill.kernel_mono == 200.417994  # unmapped
    assert KernelClock().map(kill) == kill
    one = KernelClock([(100.0, 0.002)])
    assert one.map(kill).kernel_mono == pytest.approx(200.417994 - 0.002)
    two = KernelClock([(100.0, 0.002), (300.0, 0.004)])  # drifting 10 µs per s
    assert two.map(kill).kernel_mono == pytest.approx(200.417994 - (0.002 + 0.002 * 100.417994 / 200), abs=1e-9)
    assert two.describe() == {"offset_s": 0.002, "end_offset_s": 0.004, "drift_us_per_s": 10.0}


def test_a_process_name_cannot_speak_for_another_pid():
    """A process may name itself anything in 15 bytes: `a,pid=5448` once made its own OOM report claim
    pid 5448, and the real victim's line, the report of which the kernel had rate-limited, was dropped."""
    parser = KmsgParser("/oomlab/run1", known_pid={5448}.__contains__)
    planted = OOM_KILL.replace("/a/oomlab/run1", "/user.slice/x").replace(
        "task=python3,pid=5448", "task=a,pid=5448,pid=777"
    )
    parser.feed(planted, 1.0)
    kill = parser.feed(KILLED, 1.0)
    assert kill is not None and kill.pid == 5448
    odd = OOM_KILL.replace("task=python3", "task=a,task=b)")  # the group is read up to the first ",task="
    parser.feed(odd, 1.0)
    assert parser.feed(KILLED, 1.0).memcg == "/a/oomlab/run1"
