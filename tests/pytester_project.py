"""A user's project for pytester: the plugin's ini settings, written one way for every plugin test."""

from __future__ import annotations

import pytest


def oomlab_project(pytester: pytest.Pytester, app: str, memory: str = "200MiB", *extra: str) -> pytest.Pytester:
    """`app` as 'module:attribute'; `extra` ini lines (e.g. "markers = integration")."""
    lines = [f"oomlab_app = {app}", f"oomlab_memory = {memory}", f"oomlab_results = {pytester.path / 'results'}"]
    pytester.makeini("\n".join(["[pytest]", *lines, *extra]) + "\n")
    return pytester
