"""`oomlab NAME` loads NAME's module alone (plan mode's memory): the names the loader trusts must be
the commands the full parser registers, in its order, each registered by the module it names."""

from __future__ import annotations

import argparse

import pytest
from oomlab.cli.main import COMMAND_MODULES, parser


def _registered(top: argparse.ArgumentParser) -> list[str]:
    sub = next(action for action in top._actions if isinstance(action, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_command_names_are_what_the_full_parser_registers():
    assert _registered(parser()) == list(COMMAND_MODULES)


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_a_named_command_loads_the_module_that_registers_it(name):
    siblings = [other for other, module in COMMAND_MODULES.items() if module == COMMAND_MODULES[name]]
    assert _registered(parser(name)) == siblings
