"""What a run leaves on a shared broker: a `global_keyprefix` transport option puts every key kombu
writes under a prefix (`pfx:_kombu.binding.<queue>`, `pfx:<queue>`), and the cleanup finds and
deletes them there too, on the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import json

import pytest
import redis

from tests.security.test_workdir import record, run_from

DB = 12
PREFIX = "oomlab-test-pfx:"


@pytest.mark.integration
@pytest.mark.services
def test_a_global_keyprefix_leaves_nothing_on_the_broker(tmp_path):
    client = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    options = json.dumps({"global_keyprefix": PREFIX})
    result = run_from(
        tmp_path,
        "run",
        "alloc",
        "--tasks",
        "2",
        "--param",
        "over=0",
        "--broker",
        f"redis://127.0.0.1:6379/{DB}",
        "--celery",
        f"broker_transport_options={options}",
        "--results",
        str(tmp_path / "r"),
    )
    assert result.returncode == 0, result.stderr
    run = record(result.stdout)
    assert run["status"] == "complete"
    left = [key.decode() for key in client.scan_iter(match=f"{PREFIX}*")]
    naming = [key for key in left if run["run_id"] in key]
    assert naming == [], f"the run left {naming} under its key prefix"
    for key in left:
        kind = client.type(key).decode()
        members = client.smembers(key) if kind == "set" else client.zrange(key, 0, -1) if kind == "zset" else []
        assert not [m for m in members if run["run_id"].encode() in m], f"{key} still names the run's queue"
