"""Self-contained HTML reports: figures embedded, numbers in tables, parameters and versions.

    report = Report("tfcf demo: modules of a face generator")
    report.section("Hybrids", "Each row ...", figure="out/hybrids.png")
    report.table(["k", "consistency"], [[2, 0.95], [3, 0.91]])
    report.write("out/report.html")
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from tfcf.io import atomic_write

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: 0.5em 0.8em; }
nav a { margin-right: 1em; }
"""


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Report:
    """An HTML page built section by section; figures are embedded as base64 PNG.

    Example::

        report = Report("My analysis")
        report.section("Influence maps", "What each channel changes.", figure="maps.png")
        report.write("report.html")
    """

    def __init__(self, title, intro=""):
        self.title = title
        self.intro = intro
        self.parts = []
        self.headings = []

    def section(self, heading, text="", figure=None, caption=""):
        """A heading, paragraphs (blank-line separated) and optionally an embedded PNG."""
        anchor = f"s{len(self.headings) + 1}"
        self.headings.append((anchor, heading))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2>')
        for paragraph in [p.strip() for p in text.split("\n\n") if p.strip()]:
            self.parts.append(f"<p>{html.escape(paragraph)}</p>")
        if figure is not None:
            self.figure(figure, caption)
        return self

    def figure(self, path, caption=""):
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        self.parts.append(
            f'<figure><img alt="{html.escape(Path(path).name)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>"
        )
        return self

    def table(self, header, rows, caption=""):
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_format(v))}</td>" for v in row) + "</tr>"
            for row in rows
        )
        title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{title}<tr>{head}</tr>{body}</table>")
        return self

    def note(self, text):
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')
        return self

    def code(self, data):
        text = data if isinstance(data, str) else json.dumps(data, indent=2, default=str)
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def html(self):
        nav = " ".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h in self.headings)
        intro = "".join(f"<p>{html.escape(p.strip())}</p>"
                        for p in self.intro.split("\n\n") if p.strip())
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{intro}<nav>{nav}</nav>"
            + "\n".join(self.parts) + "</body></html>\n"
        )

    def write(self, path):
        """Write the page atomically; returns its path."""
        with atomic_write(path, "w") as handle:
            handle.write(self.html())
        return Path(path)
