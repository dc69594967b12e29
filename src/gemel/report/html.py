"""The report as one self-contained HTML page: tables, and plots embedded as data URIs."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from gemel.io import atomic_path
from gemel.report.plots import PLOTS
from gemel.report.tables import TextTable, report_tables

STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { font-weight: bold; text-align: left; padding-bottom: 0.3em; }
img { max-width: 100%; }
"""


def _table(t: TextTable) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows
    )
    return f"<table><caption>{html.escape(t.title)}</caption><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any]) -> str:
    """The page's text."""
    kind = "quick demo" if report["quick"] else "demo"
    title = f"gemel {kind}: {report['workload']} on {report['device']}"
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [_table(t) for t in report_tables(report)]
    for heading, draw in PLOTS.items():
        data = base64.b64encode(draw(report)).decode("ascii")
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(report: dict[str, Any], path: str | Path) -> Path:
    """Write the page atomically; returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(render_html(report), encoding="utf-8")
    return path
