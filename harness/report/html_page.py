"""The page shell every oomlab report shares: one self-contained HTML file (style and script
inlined from harness/report/assets, nothing fetched), and the few building blocks the pages are
made of. Every text from a record passes through `escape` here: task names, arguments and
exception messages are the user's data."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any

from oomlab.errors import BadInput
from oomlab.record.reading import read_json as read_record_json
from oomlab.report.html_svg import attr
from oomlab.trust import RunDirectory, results_umask, write_private_atomic

GENERATOR = "oomlab"
REPORT_FILE = "report.html"
FOOTER = "made by oomlab from the saved record; opens offline, nothing is fetched"


def read_json(path: str) -> dict[str, Any]:
    """A record as JSON, or one sentence saying why it cannot be read."""
    data = read_record_json(path, "the record")
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not an oomlab record (no JSON object)")
    return data


def _asset(name: str) -> str:
    return (resources.files("oomlab.report") / "assets" / name).read_text(encoding="utf-8")


def page(title: str, subtitle: str, sections: Iterable[str], footer: str = "") -> str:
    # "</" cannot occur in the assets' text as shipped; refuse one that would end its element early
    script, style = _asset("report.js"), _asset("report.css")
    if "</script" in script.lower() or "</style" in style.lower():
        raise ValueError("an asset would close its own element")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="{GENERATOR}">'
        f"<title>{escape(title)}</title><style>{style}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{''.join(sections)}<footer>{escape(footer)}</footer></main>"
        '<div id="tip" role="tooltip" hidden></div>'
        f"<script>{script}</script></body></html>\n"
    )


def section(title: str, body_html: str, section_id: str = "", note: str = "") -> str:
    ident = f' id="{attr(section_id)}"' if section_id else ""
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<section{ident}><h2>{escape(title)}</h2>{note_html}{body_html}</section>"


@dataclass
class Cell:
    """A table cell: its text (escaped), or ready markup, and what it sorts by."""

    text: str = ""
    sort: float | str | None = None
    html: str | None = None
    css: str = ""
    tip: str = ""


def cell(value: object, sort: float | str | None = None, css: str = "", tip: str = "") -> Cell:
    return Cell(text="-" if value is None else str(value), sort=sort, css=css, tip=tip)


def table(
    columns: list[str],
    rows: list[list[Cell]],
    table_id: str = "",
    numeric: Iterable[str] = (),
    sortable: bool = True,
    row_attrs: list[str] | None = None,
    header: bool = True,
) -> str:
    """A table; `numeric` columns are right-aligned, `row_attrs` is ready markup per row."""
    numbers = set(numeric)
    head = "".join(f'<th class="num">{escape(c)}</th>' if c in numbers else f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for index, row in enumerate(rows):
        extra = f" {row_attrs[index]}" if row_attrs else ""
        tds = []
        for column, item in zip(columns, row, strict=False):
            css = " ".join(filter(None, ("num" if column in numbers else "", item.css)))
            attrs = f' class="{attr(css)}"' if css else ""
            if item.sort is not None:
                attrs += f' data-sort="{attr(item.sort)}"'
            if item.tip:
                attrs += f' title="{attr(item.tip)}"'
            tds.append(f"<td{attrs}>{item.html if item.html is not None else escape(item.text)}</td>")
        body.append(f"<tr{extra}>{''.join(tds)}</tr>")
    ident = f' id="{attr(table_id)}"' if table_id else ""
    css = ' class="sortable"' if sortable else ""
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f'<div class="table-wrap"><table{ident}{css}>{thead}<tbody>{"".join(body)}</tbody></table></div>'


def cards(items: Iterable[tuple[str, str, str]]) -> str:
    """Headline figures: (value, what it is, css class such as "bad")."""
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card {attr(css)}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
            for value, label, css in items
        )
        + "</div>"
    )


def bullet_list(items: Iterable[str], css: str = "") -> str:
    lines = "".join(f"<li>{escape(item)}</li>" for item in items)
    return f'<ul class="{attr(css)}">{lines}</ul>' if lines else '<p class="note">none</p>'


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    rows = [[cell(key), cell(value)] for key, value in pairs]
    return table(["key", "value"], rows, sortable=False, header=False)


def link(href: str, text: str) -> str:
    return f'<a href="{attr(href)}">{escape(text)}</a>'


def relative_link(from_dir: str, target: str, text: str) -> str:
    """A link that still works when the directory tree is copied elsewhere (a CI artifact); always a
    path, never a scheme such as javascript: from a crafted record."""
    path = os.path.relpath(target, from_dir)
    return link(path if path.startswith((".", "/")) else f"./{path}", text)


def html_beside(json_path: str) -> str:
    """Where the page for a record file goes: the same name, .html."""
    return os.path.splitext(json_path)[0] + ".html"


def write_page(path: str, html_text: str) -> str:
    """The page beside its record, only in a directory nobody else can write (NoPermission, exit 3:
    a run directory of someone else's could hold a symlink where the page goes), through a new
    O_EXCL temporary file."""
    RunDirectory.for_writing(os.path.dirname(os.path.abspath(path)), "directory for the report")
    write_private_atomic(path, html_text, mode=0o666 & ~results_umask())
    return path


def flatten(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested settings as dotted keys, lists kept whole, for a key/value table."""
    pairs: list[tuple[str, object]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            pairs.extend(flatten(value, f"{name}."))
        else:
            pairs.append((name, value))
    return pairs
