""""Show what was sent": the sources a reply was given, their scores and token counts, where the
prompt's tokens went, and, visibly, what was left out for lack of room."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from ui.source_viewer import location

BUDGET_ROWS = (
    ("system", "System prompt"), ("history_and_template", "Earlier turns, template and instructions"),
    ("sources", "Sources"), ("question", "Question"), ("prompt", "Prompt in all"),
    ("answer_room", "Kept for the answer"), ("n_ctx", "Context window"),
)


def report_html(meta: dict) -> str:
    cites = meta.get("citations") or []
    budget = meta.get("sources_budget") or {}
    dropped = meta.get("dropped_chunks") or []
    parts = []
    if dropped:
        parts.append(f"<p class='warn'>⚠ {len(dropped)} matching source{'s were' if len(dropped) != 1 else ' was'} "
                     "left out to fit the context window. Raise “Context length” in the conversation settings, "
                     "or lower “Max tokens”, to send more.</p>")
    if not cites:
        parts.append("<p>No source was sent with this question: nothing indexed matched it"
                     + (" closely enough" if meta.get("sources_found") else "") + ".</p>")
    rows = "".join(
        f"<tr><td>[{c.get('n')}]</td><td>{html.escape(location(c))}</td><td align='right'>{c.get('score', 0):.4f}</td>"
        f"<td align='right'>{c.get('tokens', 0)}</td></tr>" for c in cites)
    rows += "".join(
        f"<tr class='dropped'><td>—</td><td>{html.escape(location(c))} <i>(left out)</i></td>"
        f"<td align='right'>{c.get('score', 0):.4f}</td><td align='right'>{c.get('tokens', 0)}</td></tr>" for c in dropped)
    if rows:
        parts.append("<h3>Sources</h3><table cellspacing='0' cellpadding='4' width='100%'>"
                     "<tr><th></th><th align='left'>Where</th><th align='right'>Score</th>"
                     f"<th align='right'>Tokens</th></tr>{rows}</table>")
    if budget:
        brows = "".join(f"<tr><td>{label}</td><td align='right'>{budget[key]}</td></tr>"
                        for key, label in BUDGET_ROWS if key in budget)
        parts.append(f"<h3>Tokens</h3><table cellspacing='0' cellpadding='3'>{brows}</table>")
    for c in cites:
        parts.append(f"<h4>[{c.get('n')}] {html.escape(str(c.get('path', '')))}</h4>"
                     f"<pre>{html.escape(str(c.get('text', '')))}</pre>")
    return "".join(parts)


class SentReport(QDialog):
    def __init__(self, meta: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sentReport")
        self.setWindowTitle("What was sent with this question")
        self.resize(760, 560)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 14, 16, 12)
        intro = QLabel("These parts of your files were quoted to the model, best match first.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.browser = QTextBrowser()
        self.browser.document().setDefaultStyleSheet(
            "p.warn { color: #8a4b00; background: #fff4e0; } tr.dropped { color: #8a8f98; } "
            "pre { background: #f6f7f9; } th { color: #5b6170; }")
        self.browser.setHtml(report_html(meta))
        lay.addWidget(self.browser, 1)
        self.warning_shown = bool(meta.get("dropped_chunks"))
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
