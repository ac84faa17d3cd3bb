"""oomlab's public face: every name in `__all__` loads, is documented in docs/api.md, and nothing
else is exported there."""

from __future__ import annotations

import os
import re

import oomlab

API_DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "api.md")


def test_all_is_the_exported_names_and_each_loads():
    assert oomlab.__all__ == sorted(oomlab._EXPORTS), "__all__ and _EXPORTS list different names"
    for name in oomlab.__all__:
        assert getattr(oomlab, name) is not None


def test_every_public_name_is_documented_and_only_those():
    with open(API_DOC) as handle:
        table_names = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", handle.read(), re.M))
    documented = {name for pair in table_names for name in pair if name}
    assert documented == set(oomlab.__all__)
