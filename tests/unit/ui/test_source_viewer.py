"""The citation viewer shows the cited lines of the file, highlighted with context, and falls back
to the quoted text, saying so, when the file moved or changed; the sent report warns on drops."""

from ui.sent_report import SentReport, report_html
from ui.source_viewer import SourceViewer


def cite(path, start, end, text, n=1):
    return {"n": n, "path": str(path), "line_start": start, "line_end": end, "page": None, "score": 0.03,
            "text": text, "tokens": 12}


def test_cited_lines_are_highlighted_with_ten_lines_of_context(qtbot, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 41)))
    v = SourceViewer(cite(log, 20, 21, "line 20\nline 21"))
    qtbot.addWidget(v)
    assert v.from_file and not v.note.isVisibleTo(v)
    assert v.highlighted == [20, 21] and [n for n, _ in v.lines] == list(range(10, 32))
    assert "20  line 20" in v.text.toPlainText()


def test_a_moved_file_shows_the_quoted_text_and_says_so(qtbot, tmp_path):
    v = SourceViewer(cite(tmp_path / "gone.log", 5, 6, "quoted a\nquoted b"))
    qtbot.addWidget(v)
    assert not v.from_file and v.note.isVisibleTo(v) and "could not be read" in v.note.text()
    assert v.cited_lines == [(5, "quoted a"), (6, "quoted b")]


def test_a_changed_file_is_flagged(qtbot, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a\nb\nc\n")
    v = SourceViewer(cite(log, 2, 2, "something else"))
    qtbot.addWidget(v)
    assert v.from_file and "changed" in v.note.text()


def test_report_warns_when_sources_were_dropped(qtbot):
    meta = {"citations": [cite("/l/a.log", 1, 2, "x")], "sources_budget": {"prompt": 900, "n_ctx": 1024},
            "dropped_chunks": [{"path": "/l/b.log", "line_start": 3, "line_end": 3, "score": 0.01, "tokens": 400}]}
    r = SentReport(meta)
    qtbot.addWidget(r)
    text = r.browser.toPlainText()
    assert r.warning_shown and "left out to fit the context window" in text and "b.log:3" in text
    assert "nothing indexed matched" in report_html({"citations": [], "sources_found": 3})


def test_a_pdf_citation_shows_the_extracted_page_text(qtbot, tmp_path):
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.7\n\x00\x01 binary\n")
    c = cite(doc, 3, 4, "The backup job failed\nbecause the tape library was empty.")
    c["page"] = 2
    v = SourceViewer(c)
    qtbot.addWidget(v)
    assert not v.from_file and "page 2 of the PDF" in v.note.text() and "changed" not in v.note.text()
    assert v.cited_lines == [(3, "The backup job failed"), (4, "because the tape library was empty.")]


def test_a_document_citation_names_its_section_on_the_card_the_viewer_and_the_report(qtbot, tmp_path):
    from ui.message_view import _citation_label
    from ui.source_viewer import location, section

    doc = tmp_path / "R-admin.pdf"
    doc.write_bytes(b"%PDF-1.7\n\x00\x01 binary\n")
    c = cite(doc, 7, 12, "Cross-building is not possible.")
    c.update(page=8, heading="2 Installing R under Unix-alikes > <b>Installation</b>")
    assert location(c) == "R-admin.pdf:7-12, page 8 · <b>Installation</b>"
    assert "page 8 · <b>Installation</b>" in _citation_label(c)
    v = SourceViewer(c)
    qtbot.addWidget(v)
    assert v.section_label.isVisibleTo(v)
    assert v.section_label.text() == "Section: 2 Installing R under Unix-alikes > <b>Installation</b>"
    assert "Installation" in v.windowTitle()
    assert "&lt;b&gt;Installation" in report_html({"citations": [c]})     # escaped, not markup
    # A log record has no section, and says none.
    log = cite(tmp_path / "app.log", 1, 1, "x")
    assert section(log) == "" and "·" not in location(log)
    v2 = SourceViewer(log)
    qtbot.addWidget(v2)
    assert not v2.section_label.isVisibleTo(v2)


def test_a_pdf_citation_opens_its_page_with_the_cited_lines_highlighted(qtbot, tmp_path):
    doc = tmp_path / "manual.pdf"
    doc.write_bytes(b"%PDF-1.7\n\x00\x01 binary\n")
    page = ["3 Cartridges", "Cartridges are ordered from the vendor every quarter.", "",
            "Each cartridge holds twelve terabytes when compressed.", "", "Old ones are shredded."]
    c = cite(doc, 4, 4, "Each cartridge holds twelve terabytes when compressed.")
    c.update(page=4, page_lines=page)
    v = SourceViewer(c)
    qtbot.addWidget(v)
    assert v.whole_page and "page 4 of the PDF" in v.note.text() and "highlighted" in v.note.text()
    assert [n for n, _ in v.lines] == [1, 2, 3, 4, 5, 6] and v.highlighted == [4]
    assert "Old ones are shredded." in v.text.toPlainText()
    # Lines that do not hold the quote (an index from another version of the file): the quote alone.
    c["page_lines"] = ["something else"] * 6
    v2 = SourceViewer(c)
    qtbot.addWidget(v2)
    assert not v2.whole_page and v2.cited_lines == [(4, "Each cartridge holds twelve terabytes when compressed.")]
