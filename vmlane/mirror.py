"""The Debian mirror this machine's apt already uses, for debootstrap: read from its own sources
(deb822 `.sources` files and one-line `sources.list`), so no host name is written in the repository.

`python3 -m vmlane.mirror [SUITE]` prints it (for .ci/run); exit 1 when apt names no mirror for SUITE.
"""

from __future__ import annotations

import glob
import sys

SOURCES = ("/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list")))
DEB822 = tuple(sorted(glob.glob("/etc/apt/sources.list.d/*.sources")))


def _one_line_entries(text: str) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 4 and words[0] == "deb":
            words = [w for w in words[1:] if not w.startswith("[")]  # drop [options]
            entries.append((words[0], [words[1]], words[2:]))
    return entries


def _deb822_entries(text: str) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith(("#", " ")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return entries


def entries(one_line: dict[str, str], deb822: dict[str, str]) -> list[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) for every enabled `deb` source, given the files' texts by path."""
    found = [e for text in one_line.values() for e in _one_line_entries(text)]
    return found + [e for text in deb822.values() for e in _deb822_entries(text)]


def debian_mirror(suite: str, one_line: dict[str, str], deb822: dict[str, str]) -> str | None:
    """The first source serving SUITE itself (not -security or -updates) with component main."""
    for uri, suites, components in entries(one_line, deb822):
        if suite in suites and "main" in components:
            return uri.rstrip("/")
    return None


def _read(paths: tuple[str, ...]) -> dict[str, str]:
    texts = {}
    for path in paths:
        try:
            with open(path) as handle:
                texts[path] = handle.read()
        except OSError:
            pass
    return texts


def machine_mirror(suite: str = "bookworm") -> str | None:
    return debian_mirror(suite, _read(SOURCES), _read(DEB822))


if __name__ == "__main__":
    mirror = machine_mirror(sys.argv[1] if len(sys.argv) > 1 else "bookworm")
    if mirror is None:
        print("vmlane.mirror: apt's sources name no Debian mirror for that suite", file=sys.stderr)
        sys.exit(1)
    print(mirror)
