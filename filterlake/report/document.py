"""The report as a list of sections of blocks, rendered to one self-contained HTML page and to Markdown."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from filterlake.report.tables import Table


@dataclass
class Para:
    """Plain text. kind: "text", "note" (small print), "verdict" (a boxed headline) or "warning"."""

    text: str
    kind: str = "text"


@dataclass
class Bullets:
    """A bulleted list."""

    items: list[str]


@dataclass
class Figure:
    """A PNG beside index.html; ``caption`` says what is drawn, ``alt`` is the text alternative."""

    file: str
    caption: str
    alt: str


@dataclass
class Section:
    """One numbered part of the page: id (its anchor), title, reading guide and blocks."""

    id: str
    title: str
    guide: str  # the one-line reading guide the section starts with
    blocks: list = field(default_factory=list)

    def add(self, *blocks: Table | Figure | Bullets | Para) -> Section:
        """Append blocks; returns the section."""
        self.blocks.extend(blocks)
        return self


@dataclass
class Page:
    """The report being written: its folder, and the figures and tables the sections add (each table once)."""

    out: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def figure(self, path: Path, caption: str, alt: str) -> Figure:
        """Register a written PNG and return its block."""
        self.figures.append(path)
        return Figure(path.name, caption, alt)

    def table(self, table: Table) -> Table:
        """Register a table (its CSV is written at the end) and return it as a block."""
        if any(t.name == table.name for t in self.tables):
            raise ValueError(f"duplicate table name {table.name}")
        self.tables.append(table)
        return table


CSS = """
:root { --fg: #1d2430; --muted: #5b6472; --line: #d9dee5; --bg: #ffffff; --soft: #f4f6f9; --accent: #2d5fa0; }
* { box-sizing: border-box; }
body { margin: 0;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #17324d; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 2px 0; color: #c9d6e3; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 5; background: var(--soft); border-bottom: 1px solid var(--line);
      padding: 6px 28px; font-size: 13px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
main { max-width: 1400px; margin: 0 auto; padding: 8px 28px 60px; }
section { border-bottom: 1px solid var(--line); padding: 8px 0 20px; }
h2 { font-size: 21px; margin: 22px 0 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
p.guide { margin: 0 0 12px; padding: 6px 12px; border-left: 4px solid var(--accent); background: var(--soft);
          color: var(--fg); font-style: italic; }
p.note { color: var(--muted); font-size: 13px; }
p.verdict { padding: 10px 14px; border: 2px solid #2d5fa0; border-radius: 6px; background: #eef4fb;
            font-size: 16px; font-weight: 600; }
p.warning { padding: 8px 12px; border-left: 4px solid #d08a00; background: #fff7e6; }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); display: block; background: #fff; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; max-width: 1100px; }
.table-wrap { overflow: auto; max-height: 34em; margin: 6px 0 18px; border: 1px solid var(--line);
              width: fit-content; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 6px 8px; background: var(--soft); caption-side: top; }
th, td { padding: 4px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { position: sticky; top: 0; background: #e8edf3; text-align: left; cursor: pointer; user-select: none;
     white-space: nowrap; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
td { max-width: 38em; }
tbody tr:nth-child(even) { background: #fafbfc; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
.table-note { color: var(--muted); font-size: 12px; margin: -12px 0 16px; }
details { margin: 6px 0 14px; }
summary { cursor: pointer; color: var(--accent); }
code { background: var(--soft); padding: 0 3px; border-radius: 3px; }
"""

# Click a header to sort its column (numbers by their data-v value); a second click reverses.
JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var key = function (row) {
        var cell = row.cells[col], v = cell.getAttribute("data-v");
        return v !== null && v !== "" ? parseFloat(v) : cell.textContent.trim().toLowerCase();
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") { return asc ? x - y : y - x; }
        return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_html(table: Table) -> str:
    """A sortable HTML table with its note and CSV link (collapsed into <details> when asked); a table too
    large for the page shows what `Table.page_rows` keeps and says where the rest is."""
    if table.too_wide:
        return (
            f'<p class="table-note" id="t-{_e(table.name)}"><strong>{_e(table.title)}</strong>: '
            f'{_e(table.cut_note())} CSV: <a href="tables/{_e(table.name)}.csv">tables/{_e(table.name)}.csv</a></p>'
        )
    numeric = table.numeric_columns()
    head = "".join(
        f'<th class="num" scope="col">{_e(c)}</th>' if n else f'<th scope="col">{_e(c)}</th>'
        for c, n in zip(table.columns, numeric)
    )
    body = []
    for raw, shown in zip(table.page_rows(), table.display_rows()):
        cells = []
        for value, text, n in zip(raw, shown, numeric):
            if n and value is not None:
                cells.append(f'<td class="num" data-v="{_e(repr(float(value)))}">{_e(text)}</td>')
            else:
                cells.append(f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(table.columns)}">(no rows)</td></tr>')
    markup = (
        f'<div class="table-wrap"><table class="sortable" id="t-{_e(table.name)}">'
        f"<caption>{_e(table.title)}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )
    said = " ".join(text for text in (table.note, table.cut_note()) if text)
    note = (
        f'<p class="table-note">{_e(said)} CSV: <a href="tables/{_e(table.name)}.csv">'
        f"tables/{_e(table.name)}.csv</a></p>"
    )
    if table.collapsed:
        return f"<details><summary>{_e(table.title)} (table)</summary>{markup}{note}</details>"
    return markup + note


def block_html(block: Table | Figure | Bullets | Para) -> str:
    """The HTML of one block."""
    if isinstance(block, Table):
        return table_html(block)
    if isinstance(block, Figure):
        return (
            f'<figure><img src="{_e(block.file)}" alt="{_e(block.alt)}" loading="eager">'
            f"<figcaption>{_e(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Para):
        if block.kind == "heading":
            return f"<h3>{_e(block.text)}</h3>"
        cls = "" if block.kind == "text" else f' class="{_e(block.kind)}"'
        return f"<p{cls}>{_e(block.text)}</p>"
    raise TypeError(f"unknown block {block!r}")


def render_html(title: str, meta: list[str], sections: list[Section]) -> str:
    """One self-contained page: inline CSS and JS, images by relative path, no network."""
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>" + "".join(f"<p>{_e(m)}</p>" for m in meta) + "</header>",
        f"<nav>{nav}</nav><main>",
    ]
    for section in sections:
        parts.append(
            f'<section id="{_e(section.id)}"><h2>{_e(section.title)}</h2>'
            f'<p class="guide">{_e(section.guide)}</p>'
        )
        parts.extend(block_html(b) for b in section.blocks)
        parts.append("</section>")
    parts.append(f"</main><script>{JS}</script></body></html>")
    return "\n".join(parts)


def render_markdown(title: str, meta: list[str], sections: list[Section]) -> str:
    """The same content as Markdown (figures as image links, tables as pipe tables)."""
    lines = [f"# {title}", ""] + [f"- {m}" for m in meta] + [""]
    for section in sections:
        lines += [f"## {section.title}", "", f"> {section.guide}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += [block.to_markdown(), ""]
            elif isinstance(block, Figure):
                lines += [f"![{block.alt}]({block.file})", "", f"*{block.caption}*", ""]
            elif isinstance(block, Bullets):
                lines += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Para):
                if block.kind == "heading":
                    lines += [f"### {block.text}", ""]
                elif block.kind == "verdict":
                    lines += [f"**{block.text}**", ""]
                elif block.kind == "note":
                    lines += [f"*{block.text}*", ""]
                else:
                    lines += [block.text, ""]
    return "\n".join(lines).rstrip() + "\n"
