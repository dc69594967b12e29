"""The demo's report: figures gathered from a demo folder, a terminal summary, an HTML page.

- :func:`build_report` -- the figures (JSON-ready) from ``gemel demo``'s output folder;
- :func:`print_summary` -- the terminal summary;
- :func:`write_html` -- the self-contained HTML page (plots embedded as data URIs).
"""

from gemel.report.figures import build_report
from gemel.report.html import render_html, write_html
from gemel.report.terminal import print_summary

__all__ = ["build_report", "print_summary", "render_html", "write_html"]
