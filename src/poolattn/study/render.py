"""Report blocks (headings, paragraphs, tables, figures) and their two renderings: Markdown and HTML.

A report is built once as a list of blocks and rendered twice, so `report.md` and `report.html` can never disagree.
The HTML page carries its stylesheet and images (base64 data URIs) inline: one file that opens without a network.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

# -------------------------------------------------------------------------------------------- blocks


@dataclass
class Span:
    """A run of inline text; style is '', 'code', 'strong' or 'em'."""

    text: str
    style: str = ""


@dataclass
class Heading:
    text: str
    level: int


@dataclass
class Para:
    spans: list[Span]
    muted: bool = False


@dataclass
class Bullets:
    items: list[list[Span]]
    muted: bool = False


@dataclass
class Cell:
    """A table cell; tags drive the styling: num, pos, neg, sig, ref, missing, task, agree, disagree."""

    text: str
    tags: tuple[str, ...] = ()


@dataclass
class Table:
    header: list[Cell]
    rows: list[list[Cell]]


@dataclass
class Figure:
    path: Path
    alt: str
    caption: str


Block = Heading | Para | Bullets | Table | Figure


def para(*parts: str | Span, muted: bool = False) -> Para:
    return Para([part if isinstance(part, Span) else Span(part) for part in parts], muted=muted)


# ------------------------------------------------------------------------------------------ rendering


def _md_inline(spans: list[Span]) -> str:
    marks = {"code": "`", "strong": "**", "em": "*", "": ""}
    return "".join(f"{marks[s.style]}{s.text}{marks[s.style]}" for s in spans)


def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    return f"**{text}**" if "sig" in cell.tags and text else text


def render_markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured Markdown; significant cells in bold, figures as relative image links."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(_md_inline(block.spans))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {_md_inline(item)}" for item in block.items))
        elif isinstance(block, Table):
            align = [("---:" if "num" in c.tags else ":---") for c in block.header]
            lines = ["| " + " | ".join(_md_cell(c) for c in block.header) + " |", "| " + " | ".join(align) + " |"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{block.alt}]({block.path.name})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 1180px; margin: 2rem auto 4rem; padding: 0 1.5rem; color: #1f2328; background: #fff;
       line-height: 1.5; font-size: 15px; }
h1 { font-size: 1.75rem; margin-bottom: .4rem; padding-bottom: .4rem; border-bottom: 2px solid #d0d7de; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; padding-bottom: .25rem; border-bottom: 1px solid #d8dee4; }
h3 { font-size: 1.05rem; margin: 1.8rem 0 .4rem; }
p, ul { margin: .5rem 0 .8rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em;
       background: #f3f4f6; padding: .1em .3em; border-radius: 4px; }
.muted { color: #57606a; font-size: .9rem; }
.table-wrap { overflow-x: auto; margin: .6rem 0 .9rem; }
table { border-collapse: collapse; font-size: .87rem; font-variant-numeric: tabular-nums; }
th, td { padding: .36rem .55rem; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; border-bottom: 2px solid #d0d7de; max-width: 10rem;
     vertical-align: bottom; }
th.task { max-width: 6.5rem; font-size: .8rem; }
tbody tr:nth-child(even) { background: #f7f8fa; }
td:first-child { font-weight: 500; white-space: nowrap; }
.num { text-align: right; }
td.num { white-space: nowrap; }
td.pos { color: #1a7f37; }
td.neg { color: #cf222e; }
td.sig { background: #fff3c4; font-weight: 700; }
td.ref, td.missing { color: #6e7781; }
td.agree { background: #e9f6ec; }
td.disagree { background: #fdeceb; }
figure { margin: 1rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 6px; }
figcaption { color: #57606a; font-size: .85rem; margin-top: .3rem; }
footer { margin-top: 3rem; color: #6e7781; font-size: .8rem; }
"""


def _html_inline(spans: list[Span]) -> str:
    tags = {"code": "code", "strong": "strong", "em": "em"}
    return "".join(f"<{tags[s.style]}>{html.escape(s.text)}</{tags[s.style]}>" if s.style else html.escape(s.text)
                   for s in spans)


def _html_cell(cell: Cell, tag: str) -> str:
    text = html.escape(cell.text)
    if "task" in cell.tags:  # let long CamelCase task names wrap between words
        text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "<wbr>", text)
    classes = " ".join(cell.tags)
    return f'<{tag} class="{classes}">{text}</{tag}>' if classes else f"<{tag}>{text}</{tag}>"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(blocks: list[Block], *, title: str, footer: str = "") -> str:
    """One self-contained page: inline CSS, images as data URIs, every text escaped, no scripts."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f'<h{block.level} id="{_slug(block.text)}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Para):
            body.append(f'<p class="muted">{_html_inline(block.spans)}</p>' if block.muted
                        else f"<p>{_html_inline(block.spans)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
            body.append(f'<ul class="muted">{items}</ul>' if block.muted else f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(_html_cell(c, "th") for c in block.header)
            rows = "".join("<tr>" + "".join(_html_cell(c, "td") for c in row) + "</tr>" for row in block.rows)
            body.append(f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                        f"<tbody>{rows}</tbody></table></div>")
        elif isinstance(block, Figure):
            body.append(f'<figure><img src="{_data_uri(block.path)}" alt="{html.escape(block.alt)}">'
                        f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    foot = f"<footer>{html.escape(footer)}</footer>" if footer else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n{foot}\n</body>\n</html>\n")
