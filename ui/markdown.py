"""Markdown of a reply to the HTML subset that Qt's rich text engine understands.

QTextDocument is not a browser: it ignores most CSS on block elements, draws no table borders
unless asked through attributes, and wraps nothing inside ``<pre>`` by default. So fenced code
becomes a one-cell table (the cell background is what paints a code block's panel), tables get
explicit border attributes, and code is coloured with Pygments' inline styles (no classes: the
document has no stylesheet for them).

Every code block gets a "Copy" link ``copy:N``; the caller keeps the returned block texts and
copies block N when that link is clicked.
"""

from __future__ import annotations

import functools
import html
import logging
import threading
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

log = logging.getLogger(__name__)

COPY_SCHEME = "copy"

CODE_BG = "#f3f4f7"
CODE_HEADER_BG = "#e9ebf0"
CODE_BORDER = "#dfe2e8"
TABLE_BORDER = "#d3d7df"
MUTED = "#6b7280"
LINK = "#2f6fde"

# Applied to every rich-text document of a message (QTextDocument.setDefaultStyleSheet).
DOCUMENT_CSS = f"""
p, li {{ margin-top: 0px; margin-bottom: 6px; }}
ul, ol {{ margin-left: 4px; margin-top: 0px; margin-bottom: 6px; }}
h1 {{ font-size: 15pt; margin-top: 8px; margin-bottom: 6px; }}
h2 {{ font-size: 13.5pt; margin-top: 8px; margin-bottom: 6px; }}
h3, h4, h5, h6 {{ font-size: 12pt; margin-top: 6px; margin-bottom: 4px; }}
code {{ font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace; background-color: {CODE_BG}; }}
pre {{ font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace; white-space: pre-wrap; margin: 0px; }}
a {{ color: {LINK}; text-decoration: none; }}
blockquote {{ color: {MUTED}; margin-left: 12px; }}
th {{ background-color: {CODE_HEADER_BG}; font-weight: 600; }}
"""


@dataclass
class Rendered:
    html: str
    code_blocks: list[str] = field(default_factory=list)


# Pygments costs ~0.2 ms a line; a streamed reply is re-rendered ~30 times a second, and its
# finished code blocks do not change, so they are coloured once.
@functools.lru_cache(maxsize=256)
def _highlight(code: str, lang: str) -> str:
    """Coloured HTML spans for ``code``; plain escaped text when the language is unknown."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:  # Pygments is optional for rendering; plain code still reads fine
        return html.escape(code)
    try:
        lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=False) if lang else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return html.escape(code)
    formatter = HtmlFormatter(noclasses=True, nowrap=True, style="friendly")
    out = highlight(code, lexer, formatter)
    # Pygments adds a background to some tokens (errors, strings in some styles); the panel
    # already has one and a second shade reads as a glitch.
    return out.replace("background-color: #f0f0f0", "")


def warm_up() -> threading.Thread:
    """Import Pygments and its common lexers off the main thread (~90 ms the first time),
    so the first code block of a streaming reply does not stall the window."""
    def work():
        for lang in ("python", "bash", "json", "javascript"):
            _highlight("x = 1\n", lang)
        render_markdown("*warm*")
    t = threading.Thread(target=work, name="markdown-warm-up", daemon=True)
    t.start()
    return t


def code_block_html(code: str, lang: str, index: int, colour: bool = True) -> str:
    code = code[:-1] if code.endswith("\n") else code
    label = html.escape(lang) if lang else "code"
    body = _highlight(code, lang) if colour else html.escape(code)
    return (
        f'<table width="100%" cellspacing="0" cellpadding="0" border="0" '
        f'style="margin-top: 4px; margin-bottom: 8px; border-color: {CODE_BORDER};">'
        f'<tr><td bgcolor="{CODE_HEADER_BG}" style="padding: 4px 10px 4px 10px;">'
        f'<table width="100%" cellspacing="0" cellpadding="0"><tr>'
        f'<td><span style="color: {MUTED}; font-size: 9pt;">{label}</span></td>'
        f'<td align="right"><a href="{COPY_SCHEME}:{index}" style="font-size: 9pt;">Copy</a></td>'
        f'</tr></table></td></tr>'
        f'<tr><td bgcolor="{CODE_BG}" style="padding: 8px 10px 8px 10px;"><pre>{body}</pre></td></tr>'
        f'</table>'
    )


def _make_parser() -> MarkdownIt:
    # Rules are bound to the renderer, hence their first argument.
    # "html": False: a model's reply is untrusted text; raw HTML in it is shown, not obeyed.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": False})
    md.enable(["table", "strikethrough"])

    def fence(renderer, tokens, idx, options, env):
        token = tokens[idx]
        lang = (token.info or "").strip().split(" ")[0]
        blocks = env.setdefault("code_blocks", [])
        blocks.append(token.content.rstrip("\n"))
        # The block still being streamed changes every batch; colouring it each time would
        # cost more than the rest of the render. It is coloured once the reply has moved on.
        still_open = env.get("streaming") and token.map and token.map[1] >= env.get("n_lines", 0)
        return code_block_html(token.content, lang, len(blocks) - 1, colour=not still_open)

    def code_block(renderer, tokens, idx, options, env):
        token = tokens[idx]
        blocks = env.setdefault("code_blocks", [])
        blocks.append(token.content.rstrip("\n"))
        return code_block_html(token.content, "", len(blocks) - 1)

    def table_open(renderer, tokens, idx, options, env):
        return (f'<table border="1" cellspacing="0" cellpadding="6" style="border-style: solid; '
                f'border-color: {TABLE_BORDER}; border-collapse: collapse; margin-bottom: 8px;">\n')

    def image(renderer, tokens, idx, options, env):
        # Never an <img>: Qt would load whatever it names (a local path such as /dev/zero or a
        # FIFO, on the UI thread) as the reply renders. Shown as a link to its target instead,
        # which opens only after the person has seen the target and said yes.
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = renderer.renderInlineAsText(token.children or [], options, env) or src
        return f'<a href="{html.escape(src, quote=True)}">[image: {html.escape(alt)}]</a>'

    md.add_render_rule("fence", fence)
    md.add_render_rule("image", image)
    md.add_render_rule("code_block", code_block)
    md.add_render_rule("table_open", table_open)
    return md


_parser = _make_parser()


def render_markdown(text: str, streaming: bool = False) -> Rendered:
    """HTML for Qt rich text, and the plain text of each code block in order.

    ``streaming``: the text is a reply still growing; its last open code block is left plain.
    """
    env: dict = {"streaming": streaming, "n_lines": text.count("\n") + 1}
    try:
        out = _parser.render(text, env)
    except Exception:  # never let one odd reply break the view; show it as plain text
        log.exception("markdown rendering failed; showing the reply as plain text")
        return Rendered(plain_html(text), [])
    return Rendered(out, list(env.get("code_blocks", [])))


def last_block_start(text: str) -> int:
    """Where (a character offset) the last top-level block of ``text`` starts; 0 if it has one.

    Everything before that offset is finished markdown: later text cannot change how it
    renders, so a streaming view can render it once and set it aside.
    """
    starts = [t.map[0] for t in _parser.parse(text) if t.level == 0 and t.map and t.nesting >= 0]
    if len(starts) < 2 or starts[-1] == 0:
        return 0
    pos = 0
    for _ in range(starts[-1]):
        pos = text.index("\n", pos) + 1
    return pos


def plain_html(text: str) -> str:
    """Text exactly as typed (line breaks and spaces kept), safe for rich text."""
    return f'<p style="white-space: pre-wrap;">{html.escape(text)}</p>'
