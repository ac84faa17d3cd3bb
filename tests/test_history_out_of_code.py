"""History lives in CHANGELOG.md and git, not in the code or the docs: a tracker's number ("issue" and a
number) means nothing to a reader of an installed copy, so none is written in a file of the repository."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ("harness", "scenarios", "workers", "tests", "bench", "docs", "tools", "vmlane", "examples", ".ci")
TOP_FILES = ("README.md", "CHANGELOG.md", "pyproject.toml", "docker-compose.yml", "docker-compose.fleet.yml")
SKIPPED_DIRS = {"__pycache__", ".venv", "build", "results", ".git", "img", "fixtures"}
TEXT = (".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".sh", "Dockerfile", "run")
TRACKER_NUMBER = re.compile(r"\bissues?[ #]*[0-9]+", re.IGNORECASE)


def checked_files():
    for name in TOP_FILES:
        yield os.path.join(ROOT, name)
    for top in CHECKED:
        for directory, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
            for name in sorted(files):
                if name.endswith(TEXT):
                    yield os.path.join(directory, name)


def numbers_in(text: str) -> list[str]:
    return [f"{text.count(chr(10), 0, hit.start()) + 1}: {hit.group()}" for hit in TRACKER_NUMBER.finditer(text)]


def test_no_tracker_number_in_code_or_docs():
    found = []
    for path in checked_files():
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            found += [f"{os.path.relpath(path, ROOT)}:{hit}" for hit in numbers_in(handle.read())]
    assert found == [], "say what changed instead of the tracker's number:\n" + "\n".join(found)


def test_the_check_sees_the_ways_a_number_is_written():
    word = "issue"  # the examples are put together here, so this file holds none of them itself
    text = f"fixed in {word.title()} 18\n({word} #3, item 2)\n{word}s 28 and 29\nan {word} with 3 parts\n{word}-free\n"
    assert numbers_in(text) == [f"1: {word.title()} 18", f"2: {word} #3", f"3: {word}s 28"]
