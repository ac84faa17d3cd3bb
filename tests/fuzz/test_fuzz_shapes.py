"""Property tests over the shapes that once broke oomlab: files that are not files (FIFOs, devices,
directories, symlinked parents), JSON nested past any stack, counts and spans of any size, and
secrets in every form a user writes them. Each answer is a documented code and one sentence, and a
generated secret is never in what oomlab writes."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oomlab.cli.main import main
from oomlab.config.bounds import MAX_CONCURRENCY, MAX_TASKS
from oomlab.config.load_shapes import ramp_schedule, shape_from_flags
from oomlab.errors import OomlabError
from oomlab.record.reading import MAX_JSON_DEPTH, parse_json
from oomlab.record.redact import MASK, mask_settings, mask_urls, safe_url, secret_name

from tests.fuzz.test_fuzz_inputs import DOCUMENTED, config_outcome, real_record

FAST = settings(
    max_examples=int(os.environ.get("OOMLAB_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# a password as people make them: letters, digits and the punctuation a URL does not allow unencoded
# (one that starts with digits and then `/` or a space is indistinguishable from host:port/path)
password = st.text(st.sampled_from("abcdefghijkLMNOPQ0123456789/ !$&()*+-.=~_"), min_size=6, max_size=24).filter(
    lambda p: p.strip() and "://" not in p and not re.match(r"\d+(?:[/\s]|$)", p)
)
schemes = st.sampled_from(["redis", "rediss", "amqp", "postgresql", "https", "mysql+pymysql"])
secret_words = st.sampled_from(["password", "passwd", "secret", "token", "api_key", "access_key", "auth_token"])


def _styles(words: list[str]) -> st.SearchStrategy[str]:
    """One name written the ways people write names: snake, kebab, camel, Pascal, UPPER, Header-Case."""
    camel = words[0].lower() + "".join(w.capitalize() for w in words[1:])
    return st.sampled_from(
        [
            "_".join(words),
            "-".join(words),
            camel,
            "".join(w.capitalize() for w in words),
            "_".join(words).upper(),
            "-".join(w.capitalize() for w in words),
        ]
    )


@FAST
@given(st.sampled_from(["db", "x", "my", "service", "aws"]), secret_words, st.data())
def test_secret_names_in_any_case_style(prefix, word, data):
    name = data.draw(_styles([prefix, *word.split("_")]))
    assert secret_name(name), name
    assert mask_settings({name: "value-that-is-secret"})[name] == MASK


@FAST
@given(schemes, st.sampled_from(["app", "", "user.name"]), password, st.sampled_from(["db", "10.0.0.2:5432"]))
def test_url_passwords_are_masked_whatever_they_hold(scheme, user, secret, host):
    url = f"{scheme}://{user}:{secret}@{host}/app"
    for text in (url, f"cannot connect to {url}: refused", f"'{url}'", f"a={url} b=1"):
        masked = safe_url(text)
        assert secret not in masked, (text, masked)
        assert f"{host}/app" in masked
    assert secret not in json.dumps(mask_urls({"args": [url], "kwargs": {"dsn": url}, "label": f"to {url}"}))


@FAST
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":']))
def test_nested_json_is_a_value_error_never_a_recursion_error(depth, opener):
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "1" * (opener != "[") + closer * depth
    try:
        value = parse_json(text)
    except ValueError:
        assert depth > MAX_JSON_DEPTH - 1
    else:
        assert depth <= MAX_JSON_DEPTH and value is not None


@FAST
@given(st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True)))
def test_a_record_holds_only_numbers_oomlab_writes(number):
    """Finite numbers and 64-bit integers: NaN, Infinity (a literal or an overflowing 1e400) and longer
    integers are refused on reading, never carried into arithmetic, dates or sizes."""
    text = json.dumps({"n": number}).replace("1e+308", "1e400")
    writable = (isinstance(number, int) and abs(number) < 2**63) or (
        isinstance(number, float) and math.isfinite(number)
    )
    try:
        value = parse_json(text)
    except ValueError:
        assert not writable or "1e400" in text
    else:
        assert writable and value["n"] == number


@FAST
@given(
    st.sampled_from(["--tasks", "--concurrency", "--in-flight"]),
    st.one_of(st.integers(-(10**30), 10**30), st.sampled_from([MAX_TASKS, MAX_TASKS + 1, MAX_CONCURRENCY + 1])),
)
def test_huge_counts_are_refused_before_a_run(tmp_path, flag, value):
    extra = ["--tasks", "5"] if flag == "--in-flight" else []
    code = config_outcome(["alloc", flag, str(value), *extra, "--results", str(tmp_path)])
    assert code in DOCUMENTED
    if value > MAX_TASKS:
        assert code == 2


@FAST
@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(1, 10**15).map(str), st.sampled_from(["1ms", "99999999999h", "30s", "0.5s"])),
            st.one_of(st.integers(0, 10**9).map(str), st.sampled_from(["0.000001", "5", "1e3"])),
        ).map(lambda t: f"{t[0]}:{t[1]}/s"),
        min_size=0,
        max_size=4,
    ).map(",".join)
)
def test_any_stages_are_a_schedule_or_one_sentence(stages):
    try:
        shape = shape_from_flags(None, None, stages, None, None, 0)
    except OomlabError as error:
        assert error.exit_code == 2 and "\n" not in error.message
        return
    assert shape is not None
    for count, _ in enumerate(ramp_schedule(shape.stages)):  # never divides by zero
        if count > 1000:
            break


def _special(directory: str, kind: str) -> str:
    path = os.path.join(directory, "special")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.mkdir(path)
    elif kind == "dev":
        os.symlink("/dev/zero", path)
    else:  # a symlinked parent holding a real record
        os.mkdir(os.path.join(directory, "real"))
        with open(os.path.join(directory, "real", "run.json"), "w") as handle:
            json.dump(real_record(), handle)
        os.symlink(os.path.join(directory, "real"), os.path.join(directory, "link"))
        path = os.path.join(directory, "link", "run.json")
    return path


@FAST
@given(
    st.sampled_from(["fifo", "dir", "dev", "symlinked-parent"]),
    st.sampled_from(["baseline", "current", "report", "export", "save"]),
)
def test_files_that_are_not_files_never_hang(capsys, kind, command):
    """Run in-process: a blocking open of a FIFO would hang the test itself, so passing is the proof."""
    with tempfile.TemporaryDirectory() as directory:
        special = _special(directory, kind)
        holder = os.path.join(directory, "holder")
        os.mkdir(holder)
        if kind != "symlinked-parent":
            os.symlink(special, os.path.join(holder, "run.json"))
        else:
            holder = os.path.dirname(special)
        argv = {
            "baseline": ["gate", "--baseline", special, "--current", holder],
            "current": ["gate", "--baseline", os.path.join(directory, "none.json"), "--current", holder],
            "report": ["report", special if kind != "symlinked-parent" else holder],
            "export": ["export", holder, "--parquet", os.path.join(directory, "x.parquet")],
            "save": ["baseline", "save", holder, os.path.join(directory, "b.json")],
        }[command]
        code = main(argv)
        err = capsys.readouterr().err
        assert code in DOCUMENTED and "internal error" not in err and "Traceback" not in err, err
