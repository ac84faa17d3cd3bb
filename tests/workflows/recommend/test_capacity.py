from oomlab.workflows.recommend.capacity import plan_capacity, vpa_rule
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.prove import Trial, prove
from oomlab.workflows.recommend.startup_cost import StartupCost

MIB = 1024 * 1024


def profile(**changes):
    values = dict(
        run_dir="r",
        fixed_bytes=40 * MIB,
        main_ready_rss_bytes=50 * MIB,
        child_idle_uss_bytes=10 * MIB,
        child_idle_pss_bytes=30 * MIB,
        child_start_rss_bytes=50 * MIB,
        child_max_uss_bytes=55 * MIB,
        marginal_peaks=[40 * MIB, 48 * MIB],
        peak_rss=[90 * MIB, 98 * MIB],
        tasks=2,
    )
    values.update(changes)
    return WorkerProfile(**values)


def test_concurrency_is_what_fits_after_the_worker_and_the_margin():
    plan = plan_capacity(profile(), 300 * MIB, 0.0)
    assert plan.per_child_bytes == 58 * MIB  # 10 idle + 48 largest task, above the 55 sampled
    assert plan.concurrency == (300 - 40) // 58 == 4
    assert plan.usage_at(4) <= 300 * MIB < plan.usage_at(5)
    assert plan_capacity(profile(), 300 * MIB, 0.10).concurrency == (270 - 40) // 58


def test_memory_per_child_sits_above_a_normal_tasks_ru_maxrss():
    plan = plan_capacity(profile(), 300 * MIB, 0.0)
    share = (300 - 40) * MIB // 4
    assert plan.max_memory_per_child_kib == (50 * MIB + share - 10 * MIB) // 1024
    assert plan.max_memory_per_child_kib * 1024 > 50 * MIB + 48 * MIB  # not after every task


def test_a_task_that_cannot_fit_gets_no_safe_setting_and_a_way_out():
    plan = plan_capacity(profile(marginal_peaks=[400 * MIB]), 300 * MIB, 0.1)
    assert plan.concurrency == 0 and "own queue" in plan.no_safe_setting and "chunks" in plan.no_safe_setting
    assert "fixed variant" not in plan.no_safe_setting and "OOM-killed" not in plan.no_safe_setting
    named = plan_capacity(
        profile(marginal_peaks=[400 * MIB], largest_task="shop.external"), 300 * MIB, 0.1, None, "fixed"
    )
    assert (
        "one task, shop.external," in named.no_safe_setting and "the scenario's fixed variant" in named.no_safe_setting
    )


def test_a_leak_gets_max_tasks_per_child():
    plan = plan_capacity(profile(leak_bytes_per_task=4 * MIB, child_max_uss_bytes=200 * MIB), 300 * MIB, 0.0)
    assert plan.max_tasks_per_child and plan.max_tasks_per_child >= 1
    assert plan.per_child_bytes == int(58 * MIB * 1.25)  # the leak's high-water mark is not a task's need


def test_children_starting_together_cost_their_share_of_the_groups_start_up_peak():
    # measured for `leak` at 256 MiB: 14.5 MiB USS after the fork alone, 22.8 MiB each when 4 started
    # together (135.0 MiB peak before any task, 43.9 MiB of it the worker's own); 16.2 MiB per task
    alone = profile(fixed_bytes=44 * MIB, child_idle_uss_bytes=14 * MIB, marginal_peaks=[16 * MIB])
    alone.child_max_uss_bytes = 0
    assert plan_capacity(alone, 256 * MIB, 0.0).per_child_bytes == 30 * MIB
    together = StartupCost(
        children=4, peak_bytes=44 * MIB + 4 * 23 * MIB, largest_child_bytes=24 * MIB, per_child_bytes=24 * MIB
    )
    alone.with_startup(together)
    plan = plan_capacity(alone, 256 * MIB, 0.0)
    assert alone.child_start_bytes == 24 * MIB
    assert plan.per_child_bytes == (24 + 16) * MIB
    assert plan.concurrency == (256 - 44) // 40 == 5
    assert (
        "4 children starting together took the group to 136.0 MiB before any task and the largest held 24.0 MiB"
        in plan.reasons[0]
    )
    alone.with_startup(
        StartupCost(children=1, peak_bytes=58 * MIB, largest_child_bytes=14 * MIB, per_child_bytes=14 * MIB)
    )
    assert alone.child_start_bytes == 24 * MIB  # the costlier start-up is kept


def test_recycling_room_is_left_after_the_start_up_not_the_idle_pages():
    leaking = profile(leak_bytes_per_task=4 * MIB, child_max_uss_bytes=200 * MIB)
    leaking.with_startup(
        StartupCost(children=4, peak_bytes=120 * MIB, largest_child_bytes=20 * MIB, per_child_bytes=20 * MIB)
    )
    plan = plan_capacity(leaking, 300 * MIB, 0.0)
    assert plan.per_child_bytes == int((20 + 48) * MIB * 1.25)
    share = (300 - 40) * MIB // plan.concurrency
    assert plan.max_tasks_per_child == (share - 20 * MIB - 48 * MIB) // (4 * MIB)
    assert "a slot never holds two children" in plan.reasons[-1]


def test_rule_of_thumb_uses_a_childs_rss_as_ps_shows_it():
    plan = plan_capacity(profile(), 300 * MIB, 0.0)
    assert plan.rule_of_thumb == 300 // (50 + 44)  # RSS at rest + median task growth


def test_vpa_rule():
    advice = vpa_rule([100 * MIB] * 9 + [200 * MIB], 250 * MIB)
    assert advice.target_bytes == int(200 * MIB * 1.15)
    assert advice.after_oom_bytes == 350 * MIB


def fake(boundary):
    return lambda n: Trial(n, f"run{n}", n >= boundary, int(n >= boundary), "complete", None, 0, n)


def test_search_finds_the_boundary_in_logarithmic_trials():
    proof = prove(4, 64, fake(37))
    assert proof.smallest_failing == 37
    assert [t.concurrency for t in proof.trials][:4] == [4, 5, 10, 20]
    assert len(proof.trials) <= 2 + 2 * 6
    assert prove(4, 64, fake(5)).smallest_failing == 5 and len(prove(4, 64, fake(5)).trials) == 2
    assert prove(4, 8, fake(100)).smallest_failing is None
