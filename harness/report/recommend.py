"""The capacity plan in the terminal: what was measured, the plan and why, the rules operators use
beside it, the trial runs that prove the boundary, and ready-to-paste settings."""

from __future__ import annotations

from oomlab.config.sizes import format_size
from oomlab.workflows.recommend.capacity import CapacityPlan, VpaAdvice
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.prove import Proof
from rich.console import Console
from rich.table import Table


def render_profile(profile: WorkerProfile, console: Console) -> None:
    console.print(
        f"measured at concurrency 1 ({profile.tasks} tasks, {profile.kills} OOM kill(s)): main process "
        f"{format_size(profile.main_ready_rss_bytes)} RSS at ready · group before any task "
        f"{format_size(profile.fixed_bytes)} · child after the fork {format_size(profile.child_idle_uss_bytes)} USS, "
        f"{format_size(profile.child_idle_pss_bytes)} PSS, {format_size(profile.child_start_rss_bytes)} RSS · {_growth(profile)} · "
        f"whole tree, unreclaimable, {_tree_max(profile)}, "
        f"page cache touched up to {format_size(profile.page_cache_max_bytes)} (headroom) · "
        f"child private high-water {format_size(profile.child_max_uss_bytes)} · {_leak(profile)}"
    )
    startup = profile.startup
    if startup and startup.measured:
        share = (startup.peak_bytes - profile.fixed_bytes) // startup.children
        console.print(
            f"start-up: {startup.children} child(ren) starting took the group to {format_size(startup.peak_bytes)} "
            f"before any task ({format_size(max(0, share))} each beyond the worker's own "
            f"{format_size(profile.fixed_bytes)}), the largest child {format_size(startup.largest_child_bytes)} "
            f"private: {format_size(profile.child_start_bytes)} per child once started",
            markup=False,
            highlight=False,
        )
    if profile.tasks_note:
        console.print(f"note: {profile.tasks_note}", markup=False, highlight=False)
    for sentence in profile.poison:  # the measuring run stopped it: say what loops and what ends the loop
        console.print(f"• {sentence} ({profile.run_dir})", markup=False, highlight=False)


def _growth(profile: WorkerProfile) -> str:
    """The tasks' exact growth; with none measured (every task OOM-killed, none returned), what is known
    instead: how many tasks were killed and the RSS at the kill, never a 0 B maximum."""
    if profile.marginal_peaks:
        return (
            f"task growth p50 {format_size(profile.marginal(50))}, p95 {format_size(profile.marginal(95))}, "
            f"p99 {format_size(profile.marginal(99))}, max {format_size(profile.marginal_max)} (exact)"
        )
    known = f"task growth: none measured exactly ({profile.killed_tasks} of {profile.tasks} task(s) OOM-killed"
    if profile.killed_task_rss_bytes:
        known += f", {profile.killed_task} at {format_size(profile.killed_task_rss_bytes)} RSS"
    return known + ")"


def _tree_max(profile: WorkerProfile) -> str:
    return f"max {format_size(max(profile.tree_needs))} (sampled)" if profile.tree_needs else "not measured"


def _leak(profile: WorkerProfile) -> str:
    """The leak finding and what it rests on, or why there is none."""
    if profile.leaking:
        basis = f": {profile.leak_note}" if profile.leak_note else ""
        return f"a leak of {format_size(int(profile.leak_bytes_per_task))} per task{basis}"
    return profile.leak_note or "no leak: start RSS did not climb from task to task"


def render_plan(plan: CapacityPlan, vpa: VpaAdvice | None, proof: Proof | None, console: Console) -> None:
    if plan.no_safe_setting:
        console.print(f"[bold red]no safe setting[/bold red]: {plan.no_safe_setting}")
    else:
        settings = [f"--concurrency {plan.concurrency}"]
        if plan.max_memory_per_child_kib:
            settings.append(f"worker_max_memory_per_child={plan.max_memory_per_child_kib}")
        if plan.max_tasks_per_child:
            settings.append(f"worker_max_tasks_per_child={plan.max_tasks_per_child}")
        console.print(f"[bold]recommended[/bold] under {format_size(plan.limit_bytes)}: {' · '.join(settings)}")
    for reason in plan.reasons:
        console.print(f"  - {reason}")
    rules = Table(title="the same measurements, three rules", title_justify="left")
    for column in ("rule", "says", "how"):
        rules.add_column(column)
    says = "no safe setting" if plan.no_safe_setting else f"concurrency {plan.concurrency}"
    rules.add_row("oomlab", says, "fixed + N × per-child worst case + margin")
    rules.add_row(
        "rule of thumb",
        f"concurrency {plan.rule_of_thumb}",
        f"floor(limit / {format_size(plan.rule_of_thumb_worker_bytes)}, a child's RSS as ps shows it mid-task)",
    )
    if vpa is not None:
        rules.add_row(
            "VPA-style",
            f"memory {format_size(vpa.target_bytes)}"
            + (f", after the OOM {format_size(vpa.after_oom_bytes)}" if vpa.after_oom_bytes else ""),
            "p90 of the group's usage + 15 %; after an OOM max(peak + 100 MiB, peak × 1.2)",
        )
    console.print(rules)
    if proof is not None:
        render_proof(plan, proof, console)


def render_proof(plan: CapacityPlan, proof: Proof, console: Console) -> None:
    table = Table(title="trial runs under the limit", title_justify="left")
    for column in ("concurrency", "tasks", "result", "group peak", "recycled", "run"):
        table.add_column(column, justify="left" if column in ("result", "run") else "right")
    for trial in proof.trials:
        result = (
            "start-up failed"
            if trial.status == "worker_start_failed"
            else f"{trial.kills} OOM kill(s)"
            if trial.killed
            else "no OOM"
        )
        table.add_row(
            str(trial.concurrency),
            str(trial.tasks),
            result,
            format_size(trial.group_peak_bytes),
            str(trial.recycled),
            trial.run_dir,
        )
    console.print(table)
    recommended = proof.recommended
    if recommended and recommended.killed:
        console.print(
            f"[bold red]the recommended concurrency {recommended.concurrency} was OOM-killed[/bold red] "
            f"({recommended.killed_what or 'start-up failed'}): the plan is refuted and not handed over; see "
            f"{recommended.run_dir}"
        )
    if proof.smallest_failing is not None:
        console.print(
            f"boundary: {proof.smallest_failing} children are killed under this limit ({len(proof.trials)} trial runs)"
        )
        if plan.rule_of_thumb >= proof.smallest_failing:
            console.print(
                f"the rule of thumb ({plan.rule_of_thumb}) overshoots: at {proof.smallest_failing} the worker is OOM-killed"
            )
    else:
        console.print(f"no trial up to {max(t.concurrency for t in proof.trials)} was killed")
    if plan.rule_of_thumb < plan.concurrency and recommended and not recommended.killed:
        console.print(
            f"the rule of thumb ({plan.rule_of_thumb}) undershoots: {plan.concurrency} ran without an OOM kill"
        )


def snippet(plan: CapacityPlan, memory_text: str, app: str = "APP") -> str:
    if plan.no_safe_setting:
        return ""
    conf = [f"worker_concurrency = {plan.concurrency}"]
    flags = [f"--concurrency {plan.concurrency}"]
    if plan.max_memory_per_child_kib:
        conf.append(f"worker_max_memory_per_child = {plan.max_memory_per_child_kib}  # KiB, checked after each task")
        flags.append(f"--max-memory-per-child {plan.max_memory_per_child_kib}")
    if plan.max_tasks_per_child:
        conf.append(f"worker_max_tasks_per_child = {plan.max_tasks_per_child}")
        flags.append(f"--max-tasks-per-child {plan.max_tasks_per_child}")
    mib = plan.limit_bytes // (1024 * 1024)
    return "\n".join(
        [
            "# celeryconfig.py",
            *conf,
            "",
            "# celery worker flags",
            f"celery -A {app} worker " + " ".join(flags),
            "",
            "# docker-compose.yml (the worker service)",
            f"    mem_limit: {mib}m",
            f"    memswap_limit: {mib}m",
            "",
            "# Kubernetes (the worker container)",
            "resources:",
            f"  requests: {{memory: {mib}Mi}}",
            f"  limits: {{memory: {mib}Mi}}   # the limit these figures were measured under ({memory_text})",
        ]
    )
