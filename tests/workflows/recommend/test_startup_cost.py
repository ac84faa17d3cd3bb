import json

from oomlab.workflows.recommend.startup_cost import startup_cost

MIB = 1024 * 1024


def _files(tmp_path, probe, group):
    (tmp_path / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in probe))
    rows = [f"{t},{usage},{peak},1,{usage},0,0" for t, usage, peak in group]
    header = "t_mono,usage_bytes,peak_bytes,processes,anon_bytes,file_bytes,shmem_bytes"
    (tmp_path / "group.csv").write_text("\n".join([header, *rows]) + "\n")


def test_the_peak_before_the_first_task_is_shared_among_the_children_that_started(tmp_path):
    probe = [
        {"ev": "child_init", "pid": 11, "t": 1.0, "uss": 20 * MIB},
        {"ev": "child_init", "pid": 12, "t": 1.1, "uss": 10 * MIB},
        {"ev": "prerun", "pid": 11, "t": 1.5},
        {"ev": "child_init", "pid": 13, "t": 2.0},  # a replacement: not part of the start-up
    ]
    group = [
        (0.9, 40 * MIB, 40 * MIB),
        (1.2, 80 * MIB, 90 * MIB),
        (1.4, 86 * MIB, 90 * MIB),
        (1.6, 200 * MIB, 200 * MIB),
    ]
    _files(tmp_path, probe, group)
    cost = startup_cost(str(tmp_path), fixed_bytes=40 * MIB)
    assert (cost.children, cost.peak_bytes, cost.per_child_bytes) == (2, 90 * MIB, 25 * MIB)  # the transient counts


def test_the_largest_child_bounds_the_share_from_below(tmp_path):
    # the child forked last copied the least: the average hides what each earlier child holds
    probe = [
        {"ev": "child_init", "pid": 11, "t": 1.0, "uss": 24 * MIB},
        {"ev": "child_init", "pid": 12, "t": 1.1, "uss": 12 * MIB},
        {"ev": "prerun", "pid": 11, "t": 1.5},
    ]
    _files(tmp_path, probe, [(1.2, 80 * MIB, 80 * MIB)])
    (tmp_path / "samples.csv").write_text(
        "t_mono,pid,rss_bytes,pss_bytes,uss_bytes\n1.3,11,1,1,26214400\n1.3,99,1,1,99999999999\n1.6,12,1,1,99999999999\n"
    )
    cost = startup_cost(str(tmp_path), fixed_bytes=44 * MIB)
    assert (cost.largest_child_bytes, cost.per_child_bytes) == (25 * MIB, 25 * MIB)  # above (80 - 44) / 2


def test_a_start_killed_before_any_task_counts_up_to_its_kill(tmp_path):
    probe = [{"ev": "child_init", "pid": p, "t": 1.0 + p / 10} for p in range(8)]
    _files(tmp_path, probe, [(1.0, 100 * MIB, 100 * MIB), (1.9, 50 * MIB, 256 * MIB)])
    cost = startup_cost(str(tmp_path), fixed_bytes=40 * MIB)
    assert cost.measured and cost.per_child_bytes == (256 - 40) * MIB // 8
