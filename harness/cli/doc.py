"""The command-line reference in Markdown, generated from the parser itself so that docs/cli.md cannot
drift from the flags: `python3 -m oomlab.cli.doc > docs/cli.md` (a unit test fails when it is stale)."""

from __future__ import annotations

import argparse
import sys

from oomlab.cli.main import parser

REGENERATE = "python3 -m oomlab.cli.doc > docs/cli.md"
USAGE_WIDTH = 100  # fixed, so the output does not depend on the terminal that generated it


def _fixed_width(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=USAGE_WIDTH)


def _subcommands(command: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, str]]:
    """Each subcommand's parser with its one-line help, in the order the CLI registers them."""
    found = []
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:  # argparse's own expansion: %(default)s, %(choices)s, %(prog)s
        params = {**vars(action), "prog": prog}
        if action.choices is not None:
            params["choices"] = ", ".join(map(str, action.choices))
        text = text % params
    return text


def _signature(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest)
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return ", ".join(f"{option} {metavar}" for option in action.option_strings)


def _arguments(command: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in command._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| `{_cell(_signature(action))}` | {_cell(_help(action, command.prog))} |")
    return ["| argument | what it does |", "| --- | --- |", *rows] if rows else []


def _section(command: argparse.ArgumentParser, summary: str, level: int) -> list[str]:
    command.formatter_class = _fixed_width
    lines = [f"{'#' * level} `{command.prog}`", ""]
    about = command.description or summary
    if about:
        lines += [_cell(about), ""]
    lines += ["```", command.format_usage().strip(), "```", ""]
    arguments = _arguments(command)
    if arguments:
        lines += [*arguments, ""]
    subcommands = _subcommands(command)
    if subcommands:
        lines += ["| command | what it does |", "| --- | --- |"]
        lines += [f"| `{sub.prog}` | {_cell(text)} |" for sub, text in subcommands]
        lines.append("")
    for sub, text in subcommands:
        lines += _section(sub, text, min(level + 1, 4))
    return lines


def render() -> str:
    header = [
        "# Command-line reference",
        "",
        f"Generated from the parser (`harness/cli/main.py`) by `{REGENERATE}`; do not edit by hand.",
        "Exit codes are in the [README](../README.md#exit-codes).",
        "",
        "A SIZE (`--memory`, `--max-memory-per-child`, `--fail peak:+SIZE`, the pytest marker) has one rule",
        "everywhere, in any case: `K`/`M`/`G`/`T`, `Ki`/`Mi`/`Gi`/`Ti` and `KiB`/`MiB`/`GiB`/`TiB` are binary",
        "(`256M`, `256Mi` and `256MiB` are 268,435,456 bytes: Docker's `256m`, Kubernetes' `256Mi`), `KB`/`MB`/",
        "`GB`/`TB` decimal (`256MB` and `256mb` are 256,000,000 bytes), `B` bytes. A bare `M` is Docker's, not",
        "Kubernetes' (whose `256M` is decimal: write `256MB` for that). A number needs a unit (`256` is refused).",
        "A run's headline says so when its limit was written in decimal units (`limit 244.1 MiB (256MB, decimal",
        "units: ...)`).",
        "",
    ]
    return "\n".join(header + _section(parser(), "", 2)).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
