"""What a scenario is (its Celery app, parameters and replay plan) and how one is found and loaded.

A scenario is a module (built-in: `scenarios/<name>.py`; or a user's file) with:
  app          a Celery app, or "module:attribute" naming one
  description  one line
  PARAMS       list of Param (name, default, help); values come from --param key=value
  plan(ctx)    returns a Plan of TaskCalls for a RunContext
and optionally DEFAULTS (memory, concurrency, pool, tasks, tracemalloc), CELERY_CONF, VARIANTS (a list
of Variant; the first is the default, "bad" then "fixed" by convention) and teardown(ctx), called
after the worker has stopped (e.g. to drop a table the plan seeded in an external database).
Built-in module names use underscores; users name them with hyphens (`large-args`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from oomlab.config import validate
from oomlab.config.celery_safety import check_serializers
from oomlab.config.plan_calls import PlanCalls
from oomlab.config.plan_calls import TaskCall as TaskCall  # defined beside the plan's calls
from oomlab.config.scenario_vetting import vet
from oomlab.errors import BadInput, ExtraMissing, NoPermission, ScenarioFailed, ScenarioImportFailed
from oomlab.trust import app_top_name, check_importable, check_trusted_dir, private_dir, untrusted_file_reason

BUILTIN_PACKAGE = "oomlab.scenarios"
# what a scenario's DEFAULTS (or a variant's defaults) may set: anything else is a typo, refused
SCENARIO_DEFAULT_KEYS = frozenset({"memory", "concurrency", "pool", "tasks", "tracemalloc"})
# the libraries the built-in scenarios run, by top-level module, and the extra that installs them
EXTRA_MODULES = {
    "numpy": "scenarios",
    "pandas": "scenarios",
    "PIL": "scenarios",
    "sqlalchemy": "scenarios",
    "psycopg": "scenarios",
}
# sys.exit() in a scenario's code is the scenario's failure: never oomlab's own exit (and code)
SCENARIO_ERRORS = (Exception, SystemExit)


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    help: str

    def parse(self, text: Any) -> Any:
        """A value from a command line (a string), or one a program passes already typed."""
        kind = type(self.default)
        if not isinstance(text, str):
            if kind is float and isinstance(text, int) and not isinstance(text, bool):
                return float(text)
            if isinstance(text, kind) or (kind is tuple and isinstance(text, list)):
                return text
            raise BadInput(f"parameter {self.name}={text!r} is not a {kind.__name__} (default {self.default!r})")
        return validate.param_value(self.name, self.default, text)  # checked before the scenario sees it


@dataclass(frozen=True)
class Variant:
    """One way of running a scenario. The worker sees the name in OOMLAB_VARIANT (see
    `oomlab.scenarios._common.worker_variant`); `defaults` and `celery_conf` apply unless the user overrides
    them on the command line, so a fix that is a setting (a lower concurrency, the threads pool,
    worker_max_memory_per_child) is stated here rather than in code."""

    name: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    celery_conf: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """The calls to send and the time they may take. `calls` is a list, or a PlanCalls that makes each
    call when it is read (a plan of a million tasks holds no list: oomlab.config.plan_calls)."""

    calls: Sequence[TaskCall]
    timeout: float = 60.0


def repeated(plan: Plan, at_least: int | None) -> Plan:
    """The plan's calls again, round after round (each round shifted by the plan's own span), until
    at least `at_least` are sent, with the timeout scaled alike: a proof that needs every child to run
    N tasks gets them whether or not the scenario honours `ctx.tasks`."""
    if not at_least or not plan.calls or len(plan.calls) >= at_least:
        return plan
    rounds = -(-at_least // len(plan.calls))
    span = max(call.at for call in plan.calls)
    calls = [replace(call, at=call.at + index * span) for index in range(rounds) for call in plan.calls]
    return Plan(calls, plan.timeout * rounds)


@dataclass(frozen=True)
class RunContext:
    """What a plan may depend on: the limit it runs under, the pool, the user's parameters."""

    limit_bytes: int
    concurrency: int
    pool: str
    variant: str
    tasks: int | None
    params: dict[str, Any]
    run_dir: str
    inputs_dir: str = ""  # shared by runs in one results directory: generated inputs are cached here

    def input_path(self, name: str) -> str:
        """Where a generated input goes: in a directory nobody else can write (NoPermission otherwise),
        since the scenario writes there as root."""
        return os.path.join(private_dir(self.inputs_dir or self.run_dir, "inputs directory"), name)


@dataclass
class Scenario:
    name: str
    module: ModuleType
    module_ref: str  # what the worker imports: a dotted name or a file path
    description: str
    params: list[Param]
    variants: dict[str, Variant]
    defaults: dict[str, Any]
    celery_conf: dict[str, Any]
    app_ref: str | None = None  # "module:attribute" when the app is the user's own (a pytest session)

    @property
    def app(self):
        return resolve_app(self.app_ref or self.module.app)

    @classmethod
    def for_app(cls, app_ref: str) -> Scenario:
        """A user's own Celery app with no plan: its tasks are sent by the user's code (pytest)."""
        module_name = app_ref.partition(":")[0]
        try:
            module = importlib.import_module(module_name)
            resolve_app(app_ref)
        except SCENARIO_ERRORS as exc:
            raise failure(app_ref, "to import", exc, ScenarioImportFailed, label="app") from None
        return cls(
            name=module_name,
            module=module,
            module_ref=module_name,
            description=f"the app {app_ref}",
            params=[],
            variants=_variants(None),
            defaults={},
            celery_conf={},
            app_ref=app_ref,
        )

    @property
    def app_target(self) -> str:
        """What `celery -A` takes for this app in the user's own deployment: the "module:attribute"
        they gave (a pytest session, an attach config, a scenario's `app = "myapp.celery:app"`), else
        the module that defines the app object the scenario imported (`myapp.celery:app`, not the
        scenario file that imported it), else the scenario's own module."""
        given = self.app_ref or (self.module.app if isinstance(getattr(self.module, "app", None), str) else None)
        if given:
            return given
        app, own = self.module.app, self.module.__name__
        homes = [
            f"{name}:{attribute}"
            for name, module in list(sys.modules.items())
            if module is not None and name not in (own, "__main__") and not name.startswith("oomlab.")
            for attribute, value in list(vars(module).items())
            if value is app
        ]
        return min(homes, key=len) if homes else f"{own}:app"

    def resolve_params(self, given: dict[str, str]) -> dict[str, Any]:
        known = {param.name: param for param in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise BadInput(f"scenario {self.name} has no parameter {unknown[0]!r} (it takes: {names})")
        return {name: (param.parse(given[name]) if name in given else param.default) for name, param in known.items()}

    def variant(self, name: str | None) -> Variant:
        if name is None:
            return next(iter(self.variants.values()))
        if name not in self.variants:
            raise BadInput(f"scenario {self.name} has no variant {name!r} (it has: {', '.join(self.variants)})")
        return self.variants[name]

    def defaults_for(self, variant: Variant) -> dict[str, Any]:
        """The variant's defaults over the scenario's."""
        return {**self.defaults, **variant.defaults}

    def plan(self, ctx: RunContext) -> Plan:
        try:
            plan = self.module.plan(ctx)
        except SCENARIO_ERRORS as exc:
            # a built-in's driver loaded late (psycopg for a postgresql:// URL)
            if self.module_ref.startswith(f"{BUILTIN_PACKAGE}.") and (needs := missing_extra(self.name, exc)):
                raise needs from None
            raise failure(self.name, "in plan()", exc) from None
        check_plan(self.name, plan)
        return plan

    def teardown(self, ctx: RunContext) -> None:
        if hasattr(self.module, "teardown"):
            try:
                self.module.teardown(ctx)
            except SCENARIO_ERRORS as exc:
                raise failure(self.name, "in teardown()", exc) from None


def check_plan(name: str, plan: Any) -> None:
    """What plan() returned is a Plan of TaskCalls: anything else is the scenario's mistake, said here
    rather than as an AttributeError deep in the run."""
    if not isinstance(plan, Plan):
        raise ScenarioFailed(f"scenario {name}'s plan() returned {_kind(plan)}, not a Plan (see docs/scenarios.md)")
    calls = plan.calls
    if not isinstance(calls, (list, tuple, PlanCalls)):
        raise ScenarioFailed(
            f"scenario {name}'s plan() returned a Plan whose calls are {_kind(calls)}, not a list or a PlanCalls"
        )
    if isinstance(calls, PlanCalls):  # made on demand: the first here, each one as it is sent
        if isinstance(calls.length, bool) or not isinstance(calls.length, int) or calls.length < 0:
            raise ScenarioFailed(f"scenario {name}'s plan() returned PlanCalls of {calls.length!r} calls, not a count")
        calls = [made_call(name, calls, 0)] if calls.length else []
    wrong = next((call for call in calls if not isinstance(call, TaskCall)), None)
    if wrong is not None:
        raise ScenarioFailed(
            f"scenario {name}'s plan() returned a Plan with {_kind(wrong)} among its calls, not a TaskCall"
        )
    for call in calls:
        check_chain(name, call)
    if isinstance(plan.timeout, bool) or not isinstance(plan.timeout, (int, float)) or not plan.timeout > 0:
        raise ScenarioFailed(f"scenario {name}'s plan() returned a Plan whose timeout is {plan.timeout!r}, not seconds")


def check_chain(name: str, call: TaskCall, depth: int = 0) -> None:
    """A call's `then` is a tuple or list of TaskCalls, chained at most MAX_CHAIN deep."""
    if not isinstance(call.then, (tuple, list)):
        raise ScenarioFailed(
            f"scenario {name}'s call of {call.task} has then={_kind(call.then)}, not a tuple of TaskCalls"
        )
    for then in call.then:
        if not isinstance(then, TaskCall):
            raise ScenarioFailed(f"scenario {name}'s call of {call.task} chains {_kind(then)}, not a TaskCall")
        if depth >= MAX_CHAIN:
            raise ScenarioFailed(f"scenario {name}'s call of {call.task} chains more than {MAX_CHAIN} calls deep")
        check_chain(name, then, depth + 1)


MAX_CHAIN = 100  # calls chained one inside another's `then`: deeper is a plan's mistake, not a workflow


def made_call(name: str, calls: PlanCalls, index: int) -> TaskCall:
    """Call `index` of a lazy plan, its maker's error or a wrong value the scenario's failure."""
    try:
        call = calls.make(index)
    except SCENARIO_ERRORS as exc:
        raise failure(name, f"making call {index} of its plan", exc) from None
    if not isinstance(call, TaskCall):
        raise ScenarioFailed(f"scenario {name}'s plan made {_kind(call)} as call {index}, not a TaskCall")
    if call.then:
        check_chain(name, call)
    return call


def call_reader(name: str, calls: Sequence[TaskCall]) -> Callable[[int], TaskCall]:
    """Call *i* of a plan: a list's own item, a PlanCalls' made and checked (made_call)."""
    if isinstance(calls, PlanCalls):
        return functools.partial(made_call, name, calls)
    return calls.__getitem__


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def app_import_root(app_ref: str) -> str:
    """The sys.path entry the module of a "module:attribute" app was imported from (its top-level
    package's parent directory), checked like a scenario's folder: the worker appends it after the
    standard library, so the user's app is found and nothing in that folder shadows an installed module."""
    top = app_top_name(app_ref)
    module = sys.modules.get(top) or importlib.import_module(top)
    where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
    if where is None:
        raise BadInput(f"cannot tell which directory the app {app_ref} comes from")
    root = os.path.dirname(os.path.abspath(where))
    if hasattr(module, "__path__") and getattr(module, "__file__", None):
        root = os.path.dirname(root)  # a package: its __init__.py is one level further down
    root = check_trusted_dir(root, "app's directory")
    check_importable(root, app_ref, f"the app {app_ref}")  # the folder may be trusted and the package not
    return root


def resolve_app(app):
    """A Celery app given as an object or as "module:attribute"."""
    if isinstance(app, str):
        module_name, _, attribute = app.partition(":")
        app = getattr(importlib.import_module(module_name), attribute or "app")
    return app


def builtin_names() -> list[str]:
    package = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(
        info.name.replace("_", "-") for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")
    )


def _variants(declared) -> dict[str, Variant]:
    variants = [Variant(v) if isinstance(v, str) else v for v in (declared or ("default",))]
    return {variant.name: variant for variant in variants}


_OWN_CODE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # oomlab's package directory
_LIBRARIES = tuple(
    os.path.abspath(path) + os.sep
    for path in {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    if path
)


def failure(
    name: str,
    stage: str,
    exc: BaseException,
    kind=ScenarioFailed,
    label: str = "scenario",
    fallback: tuple[str, int] | None = None,
) -> ScenarioFailed:
    """One sentence naming the exception and the user's line it came from: the innermost frame
    outside oomlab (a built-in scenario's file counts as a scenario's), preferring the user's own
    files to installed libraries; else `fallback` (the scenario line that names an app)."""
    where = _users_frame(exc) or fallback
    shown = f" ({where[0]}, line {where[1]})" if where else ""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    said = f": {first_line}" if first_line else ""
    return kind(f"{label} {name} failed {stage}: {type(exc).__name__}{said}{shown}")


def _with_path_hint(error: ScenarioFailed, ref: str, exc: BaseException) -> ScenarioFailed:
    """A scenario file's import of a package that sits in the working directory, which is not on the
    path (only the file's own folder is, last): the sentence says so and what to do."""
    top = (getattr(exc, "name", None) or "").partition(".")[0]
    if not (ref.endswith(".py") and isinstance(exc, ModuleNotFoundError) and top):
        return error
    here = os.getcwd()
    if not (os.path.isdir(os.path.join(here, top)) or os.path.isfile(os.path.join(here, f"{top}.py"))):
        return error
    folder = os.path.dirname(os.path.abspath(ref))
    return type(error)(
        f"{error.message}; {top} is in the working directory, which is not on the path (only the scenario "
        f"file's folder {folder} is): put the file beside {top}, or install your project (pip install -e .)"
    )


def _users_frame(exc: BaseException) -> tuple[str, int] | None:
    builtin = os.path.dirname(os.path.abspath(importlib.import_module(BUILTIN_PACKAGE).__file__ or ""))
    outside = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename)
        if frame.filename.startswith("<") or "importlib" in frame.filename:
            continue
        if path.startswith(_OWN_CODE + os.sep) and not path.startswith(builtin + os.sep):
            continue
        outside.append((frame.filename, frame.lineno or 0, path.startswith(_LIBRARIES)))
    own = [frame for frame in outside if not frame[2]]
    chosen = own or outside
    return (chosen[-1][0], chosen[-1][1]) if chosen else None


def _app_line(module: ModuleType) -> tuple[str, int] | None:
    """Where a scenario file names its app (`app = "module:attribute"`)."""
    path = getattr(module, "__file__", None)
    try:
        with open(path or "", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if re.match(r"\s*app\s*(:[^=]*)?=", line):
                    return path or "", number
    except OSError:
        pass
    return None


def missing_extra(name: str, exc: BaseException) -> ExtraMissing | None:
    """A built-in scenario whose library is not installed: the sentence naming the extra that brings it."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.partition(".")[0]
    extra = EXTRA_MODULES.get(module)
    if extra is None:
        return None
    return ExtraMissing(name, module, extra)


def import_scenario_module(ref: str) -> ModuleType:
    """Import a scenario by dotted name or file path (used by the harness and the worker alike).

    A file is imported only from a directory nobody else can write (oomlab runs as root: a module
    planted beside it would run too), and its folder goes last on sys.path: its own neighbours can
    be imported, but never in place of an installed module of the same name."""
    if ref.endswith(".py"):
        path = os.path.abspath(ref)
        directory = trusted_scenario_file(path)
        if directory not in sys.path:
            sys.path.append(directory)
        module_name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise BadInput(f"scenario file {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(ref)


def scenario_name(ref: str) -> str:
    """The name a scenario goes by, from what the user typed (a built-in name or a .py path)."""
    if ref.endswith(".py"):
        return os.path.splitext(os.path.basename(ref))[0]
    return ref.replace("_", "-")


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by built-in name or file path. A file is checked (its directory and itself trusted)
    and vetted in a child process (oomlab.config.scenario_vetting) before oomlab imports it."""
    if name_or_path.endswith(".py"):
        if not os.path.isfile(name_or_path):
            raise BadInput(f"scenario file {name_or_path} does not exist")
        trusted_scenario_file(os.path.abspath(name_or_path))
        vet(os.path.abspath(name_or_path), scenario_name(name_or_path))
    return load_unvetted(name_or_path)


def load_unvetted(name_or_path: str) -> Scenario:
    """The import and every check on what it defined, in this process (the vetting child's part)."""
    name = scenario_name(name_or_path)
    if name_or_path.endswith(".py"):
        ref = os.path.abspath(name_or_path)
    else:
        if os.path.isfile(os.path.join(name_or_path, "run.json")):
            raise BadInput(
                f"{name_or_path} is a run's directory, not a scenario: give the scenario that run was given "
                f"(a built-in name or its .py file)"
            )
        if name not in builtin_names():
            raise BadInput(
                f"unknown scenario {name_or_path!r}; built-in scenarios: {', '.join(builtin_names())} "
                f"(or give a path to a scenario .py file)"
            )
        ref = f"{BUILTIN_PACKAGE}.{name.replace('-', '_')}"
    try:
        module = import_scenario_module(ref)
    except NoPermission:
        raise
    except SCENARIO_ERRORS as exc:
        if not name_or_path.endswith(".py") and (needs := missing_extra(name, exc)):
            raise needs from None
        raise _with_path_hint(failure(name, "to import", exc, ScenarioImportFailed), ref, exc) from None
    check_shapes(name, module)
    scenario = Scenario(
        name=name,
        module=module,
        module_ref=ref,
        description=(getattr(module, "description", None) or (module.__doc__ or "").strip().split("\n")[0]),
        params=list(getattr(module, "PARAMS", [])),
        variants=_variants(getattr(module, "VARIANTS", None)),
        defaults=dict(getattr(module, "DEFAULTS", {})),
        celery_conf=dict(getattr(module, "CELERY_CONF", {})),
    )
    check_scenario_defaults(f"scenario {name}'s DEFAULTS", scenario.defaults)
    validate.celery_setting_names(scenario.celery_conf, f"scenario {name}'s CELERY_CONF")
    check_serializers(scenario.celery_conf, f"scenario {name}'s CELERY_CONF")
    for variant in scenario.variants.values():
        check_scenario_defaults(f"scenario {name}'s variant {variant.name!r}", variant.defaults)
        validate.celery_setting_names(variant.celery_conf, f"scenario {name}'s variant {variant.name!r}")
        check_serializers(variant.celery_conf, f"scenario {name}'s variant {variant.name!r}")
    if ref.endswith(".py") and isinstance(module.app, str):  # found beside the file: its folder is trusted, is it?
        check_importable(os.path.dirname(ref), module.app, f"the app {module.app}")
    try:
        app = scenario.app  # resolve a "module:attribute" reference now, while errors are still clear
    except SCENARIO_ERRORS as exc:
        stage = f"to import its app {module.app}" if isinstance(module.app, str) else "to import"
        raise _with_path_hint(
            failure(name, stage, exc, ScenarioImportFailed, fallback=_app_line(module)), scenario.module_ref, exc
        ) from None
    from celery import Celery

    if not isinstance(app, Celery):
        raise ScenarioImportFailed(f"scenario {name}'s app is {_kind(app)}, not a Celery app")
    return scenario


_SHAPES: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("PARAMS", (list, tuple), "a list of Param"),
    ("VARIANTS", (list, tuple, type(None)), "a list of Variant"),
    ("DEFAULTS", (dict,), "a dict"),
    ("CELERY_CONF", (dict,), "a dict of Celery settings"),
    ("description", (str, type(None)), "a string"),
)


def check_shapes(name: str, module: ModuleType) -> None:
    """What a scenario module defines has the shape oomlab reads: one sentence (exit 6) otherwise,
    never a TypeError later in the run."""
    for required in ("app", "plan"):
        if not hasattr(module, required):
            raise ScenarioImportFailed(
                f"scenario {name} defines no `{required}`; see docs/scenarios.md (Writing a scenario)"
            )
    if not callable(module.plan):
        raise ScenarioImportFailed(f"scenario {name}'s plan is {_kind(module.plan)}, not a function")
    for attribute, kinds, want in _SHAPES:
        value = getattr(module, attribute, None)
        if value is not None and not isinstance(value, kinds):
            raise ScenarioImportFailed(f"scenario {name}'s {attribute} is {_kind(value)}, not {want}")
    for param in getattr(module, "PARAMS", None) or ():
        if not isinstance(param, Param):
            raise ScenarioImportFailed(f"scenario {name}'s PARAMS holds {_kind(param)}, not a Param")
    for variant in getattr(module, "VARIANTS", None) or ():
        if not isinstance(variant, (str, Variant)) or not isinstance(getattr(variant, "defaults", {}), dict):
            raise ScenarioImportFailed(f"scenario {name}'s VARIANTS holds {_kind(variant)}, not a Variant")


def trusted_scenario_file(path: str) -> str:
    """The directory of a scenario file nobody else can write (oomlab runs as root: a module planted
    beside it would run too), the file itself checked likewise; NoPermission otherwise."""
    directory = check_trusted_dir(os.path.dirname(path), "scenario directory")
    if reason := untrusted_file_reason(os.lstat(path)):
        raise NoPermission(f"refusing the scenario file {path}: {reason}")
    return directory


def check_scenario_defaults(where: str, defaults: dict[str, Any]) -> None:
    """A scenario's DEFAULTS (or a variant's) with a key oomlab does not know is a typo: refused."""
    unknown = sorted(set(defaults) - SCENARIO_DEFAULT_KEYS)
    if unknown:
        raise BadInput(
            f"{where} sets {unknown[0]!r}, which is not a run setting "
            f"(it may set: {', '.join(sorted(SCENARIO_DEFAULT_KEYS))})"
        )
