"""Search over documents: real PDFs (written by fpdf2, read by PDFium), HTML and Word files,
indexed with the real embedder; each hit knows its section, contents pages rank low, five hits
are five pages, and a question's words match the forms the document uses."""

import json
import sqlite3

import pytest

from engine.retrieval import documents, prose, ranking, word
from engine.retrieval.manifest import Manifest

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (a dev dependency) writes the test PDFs")
pytest.importorskip("pypdfium2", reason="PDFium (the retrieval extra) reads PDFs")
docx = pytest.importorskip("docx", reason="python-docx (the retrieval extra) reads and writes .docx")

# (title, paragraphs) of each section; one section per page after the contents page.
MANUAL = [
    ("1 Tape rotation", ["Sets go offsite every Friday and come back four weeks later.",
                         "The courier signs the transfer sheet kept in the blue binder."]),
    ("2 Disk alerts", ["An alert fires when a volume passes ninety percent of its space.",
                       "The engineer on call acknowledges it in the pager tool within ten minutes."]),
    ("3 Cartridges", ["Cartridges are ordered from the vendor every quarter.",
                      "Each cartridge holds twelve terabytes when compressed.",
                      "Cartridges that failed a verify pass go back to the vendor.",
                      "Cartridges older than five years are shredded on site."]),
    ("4 Restores", ["A restore request needs a ticket and the approval of the data owner.",
                    "Restores of a single folder take about an hour; a cartridge is mounted by the robot."]),
]


def write_manual(path):
    doc = fpdf.FPDF()
    doc.set_font("Helvetica", size=11)
    doc.add_page()                                     # page 1: contents, with dot leaders
    doc.cell(0, 10, "Contents", new_x="LMARGIN", new_y="NEXT")
    for i, (title, _) in enumerate(MANUAL):
        doc.cell(0, 7, f"{title} " + ". " * 40 + f"{i + 2}", new_x="LMARGIN", new_y="NEXT")
    for title, paragraphs in MANUAL:
        doc.add_page()
        doc.start_section(title)
        doc.set_font("Helvetica", "B", 14)
        doc.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", size=11)
        for text in paragraphs:
            doc.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
            doc.ln(4)
    doc.output(str(path))
    return str(path)


@pytest.fixture
def manual(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    write_manual(d / "storage-manual.pdf")
    return d


def test_stems_meet_the_forms_a_manual_uses():
    pairs = [("lengths", "length"), ("added", "adds"), ("ordering", "ordered"), ("libraries", "library"),
             ("values", "value"), ("boxes", "box"), ("stopped", "stop"), ("uses", "use")]
    for a, b in pairs:
        assert prose.stem(a) == prose.stem(b), (a, b, prose.stem(a), prose.stem(b))
    # Different words stay apart, and identifiers are not stemmed.
    assert prose.stem("process") != prose.stem("proceed") and prose.stem("status") == "status"
    assert prose.stem("why3") == "why3"


def test_question_words_match_on_stems_in_prose_only():
    words = ranking.Words("which vendor orders cartridges", {"vendor": 3, "orders": 1, "cartridges": 2}, 100)
    text = "Cartridges are ordered from the vendor every quarter."
    assert words.share(text) < 1.0                     # the log ranking matches whole words only
    assert prose.ProseWords(words).share(text) == pytest.approx(1.0)


def test_section_title_path_is_kept_with_the_chunk_and_returned_with_the_hit(index, manual):
    index.index(manual)
    rows = index.manifest.db.execute("SELECT page, heading, toc FROM chunks ORDER BY page").fetchall()
    assert {(p, h) for p, h, _ in rows if p > 1} == {(i + 2, t) for i, (t, _) in enumerate(MANUAL)}
    hit = index.search("how does the tape rotation work?", k=3)[0]
    assert hit.page == 2 and hit.heading == "1 Tape rotation"
    assert hit.to_dict()["heading"] == "1 Tape rotation" and "chunk_id" not in hit.to_dict()


def test_contents_page_is_marked_in_the_manifest_and_ranked_below_the_page_it_lists(index, manual):
    index.index(manual)
    toc = dict(index.manifest.db.execute("SELECT page, max(toc) FROM chunks GROUP BY page").fetchall())
    assert toc == {1: 1, 2: 0, 3: 0, 4: 0, 5: 0}
    # "Disk alerts" stands on the contents page and on page 3; the contents page is still found.
    hits = index.search("disk alerts", k=5)
    pages = [h.page for h in hits]
    assert pages[0] == 3 and 1 in pages and pages.index(1) > 0


def test_five_hits_are_five_pages(index, manual):
    index.index(manual)
    # Page 4 holds four paragraphs on cartridges; the other pages get the other places.
    hits = index.search("cartridges", k=4)
    pages = [h.page for h in hits]
    assert pages[0] == 4 and len(pages) == len(set(pages)), pages
    assert 5 in pages                                  # "a cartridge is mounted by the robot"


def test_a_time_or_level_filter_leaves_prose_out(index, manual):
    index.index(manual)
    assert index.search("cartridges", k=3)
    assert index.search("cartridges", k=3, level="ERROR") == []
    assert index.search("cartridges", k=3, since=0.0) == []


def test_an_index_from_before_headings_were_kept_gets_the_columns(tmp_path):
    path = tmp_path / "manifest.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, collection TEXT NOT NULL, "
               "path TEXT NOT NULL, stream_id TEXT NOT NULL, line_start INTEGER, line_end INTEGER, page INTEGER, "
               "text TEXT, records TEXT, t_min REAL, t_max REAL, levels TEXT, max_level INTEGER, embed_texts TEXT, "
               "embedded INTEGER DEFAULT 0)")
    db.execute("INSERT INTO chunks (id, collection, path, stream_id, text) VALUES ('a', 'default', '/x.pdf', 's', 'old')")
    db.commit()
    db.close()
    m = Manifest(path)
    assert m.db.execute("SELECT heading, toc FROM chunks WHERE id = 'a'").fetchone() == ("", 0)
    m.close()


# ---------------------------------------------------------------------------- HTML and Word

PAGE = """<!doctype html><html><head><title>Runbook</title><script>var x = "<h1>no</h1>";</script></head>
<body><h1>Database runbook</h1><p>How the database hosts are run.</p>
<h2>Hosts</h2>
<table><thead><tr><th>Host</th><th>Role</th><th>Port</th></tr></thead>
<tbody><tr><td>db-eu-7</td><td>primary</td><td>5432</td></tr>
<tr><td>db-eu-8</td><td>replica</td><td>5433</td></tr></tbody></table>
<h3>Failover</h3><p>Promote the replica with the promote command, then repoint the pool.</p>
<h2>Backups</h2><p>Dumps are taken at night.</p></body></html>
"""


def test_html_headings_are_a_title_path_and_table_rows_keep_their_header():
    blocks = documents.html_blocks(PAGE)
    by_text = {r.text: r for r in blocks}
    assert by_text["How the database hosts are run."].source["heading"] == "Database runbook"
    row = by_text["db-eu-8 | replica | 5433"]
    assert row.source == {"heading": "Database runbook > Hosts", "header": "Host | Role | Port"}
    assert row.message == "Host: db-eu-8; Role: replica; Port: 5433"
    assert by_text["Host | Role | Port"].source == {"heading": "Database runbook > Hosts"}
    assert by_text["Promote the replica with the promote command, then repoint the pool."].source["heading"] == \
        "Database runbook > Hosts > Failover"
    assert by_text["Dumps are taken at night."].source["heading"] == "Database runbook > Backups"
    assert not any("no" == r.text for r in blocks)     # a script's text is not a heading


def test_markdown_headings_are_a_title_path():
    lines = ["# Guide", "Intro.", "", "## Install", "Run it.", "", "### Linux", "apt install it", "", "## Use", "Go."]
    got = {r.text.split("\n")[-1]: r.source.get("heading") for r in documents.markdown_blocks(lines)}
    assert got == {"Intro.": "Guide", "Run it.": "Guide > Install", "apt install it": "Guide > Install > Linux",
                   "Go.": "Guide > Use"}


def write_docx(path):
    d = docx.Document()
    d.add_heading("Release checklist", level=1)
    d.add_paragraph("Tag the release and build the installers.")
    d.add_heading("Database", level=2)
    t = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Host", "Role", "Port"), ("db-eu-7", "primary", "5432"), ("db-eu-8", "replica", "5433")]):
        for c, text in enumerate(row):
            t.cell(r, c).text = text
    d.add_heading("Rollback", level=1)
    d.add_paragraph("Revert the tag and redeploy the previous build.")
    d.save(str(path))
    return str(path)


def test_word_headings_by_style_and_table_rows_with_their_header(tmp_path):
    recs = {r.text: r for r in word.records(write_docx(tmp_path / "checklist.docx"))}
    assert recs["Tag the release and build the installers."].source == {"heading": "Release checklist"}
    assert recs["db-eu-7 | primary | 5432"].source == {"heading": "Release checklist > Database",
                                                       "header": "Host | Role | Port"}
    assert recs["db-eu-7 | primary | 5432"].message == "Host: db-eu-7; Role: primary; Port: 5432"
    assert recs["Revert the tag and redeploy the previous build."].source == {"heading": "Rollback"}


def test_html_and_word_hits_name_their_section(index, tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "runbook.html").write_text(PAGE, encoding="utf-8")
    write_docx(d / "checklist.docx")
    index.index(d)
    hit = index.search("how do I promote the replica during failover?", k=3)[0]
    assert hit.path.endswith("runbook.html") and hit.heading == "Database runbook > Hosts > Failover"
    hit = index.search("db-eu-7 role", k=3)[0]
    assert hit.heading.endswith("Database") and "db-eu-7" in hit.text
    # The embedder read the table rows with their column names.
    embed = [json.loads(t) for (t,) in index.manifest.db.execute(
        "SELECT embed_texts FROM chunks WHERE text LIKE '%db-eu-8 | replica%'")]
    assert embed and all("Role: replica" in e[0] for e in embed)
    headers = {h for (h,) in index.manifest.db.execute("SELECT table_header FROM chunks WHERE text LIKE '%db-eu-8%'")}
    assert headers == {"Host | Role | Port"}


def test_the_section_travels_with_a_citation():
    from engine.grounding import SourceChunk
    c = SourceChunk("/docs/manual.pdf", 7, 12, 8, 1.0, "Cross-building is not possible.", heading="2 Installing R")
    assert c.citation()["heading"] == "2 Installing R"


def test_a_pdf_citation_carries_its_whole_page_as_indexed(index, manual, embedder, monkeypatch):
    from engine import protocol as p
    from engine.retrieval import pdf
    from engine.retrieval.session import RetrievalSessions

    path = str(manual / "storage-manual.pdf")
    index.index(manual)
    expected = dict(pdf.pages(path))[4]
    while expected and not expected[-1].strip():
        expected.pop()
    assert index.manifest.page_lines(path, 4) == expected and "3 Cartridges" in expected
    assert index.manifest.page_lines(path, 99) == []

    sessions = RetrievalSessions(embedder=embedder)
    try:
        chat = p.Chat(messages=[{"role": "user", "content": "how often are cartridges ordered from the vendor?"}],
                      use_sources=True, data_dir=str(index.manifest.path.parent))
        chunks, found = sessions.chat_sources(chat)
    finally:
        sessions.close()
    top = chunks[0]
    assert found and top.page == 4 and top.heading == "3 Cartridges"
    cited = top.page_lines[top.line_start - 1:top.line_end]
    assert " ".join(cited).split() == top.text.split()
    assert top.citation()["page_lines"] == expected

    # A page too big to carry (a data dump drawn as text): the citation keeps its quote only.
    import engine.retrieval.session as session_mod
    monkeypatch.setattr(session_mod, "PAGE_LINES_MAX_CHARS", 50)
    sessions = RetrievalSessions(embedder=embedder)
    try:
        chunks, _ = sessions.chat_sources(chat)
    finally:
        sessions.close()
    assert chunks[0].page == 4 and chunks[0].page_lines == []


def test_a_numbered_section_title_opening_a_page_is_text_not_a_running_header():
    from engine.retrieval import pdf
    titles, headings = {"installing r under macos"}, frozenset({"4 installing r under macos"})
    assert pdf._titled_folio("Chapter 4: Installing R under macOS 21", titles, headings)
    assert pdf._titled_folio("Installing R under macOS 21", titles, headings)
    assert not pdf._titled_folio("4 Installing R under macOS", titles, headings)


def test_a_section_whose_title_wraps_starts_where_its_title_stands(tmp_path):
    from engine.retrieval import pdf
    long_title = "2 Index vectors; selecting and modifying subsets of a data set"
    doc = fpdf.FPDF()
    doc.set_font("Helvetica", size=11)
    doc.add_page()
    doc.start_section("1 Character vectors")
    doc.cell(0, 10, "1 Character vectors", new_x="LMARGIN", new_y="NEXT")
    doc.multi_cell(0, 7, "The paste() function joins its arguments with a blank; sep changes it.",
                   new_x="LMARGIN", new_y="NEXT")
    doc.ln(4)
    doc.start_section(long_title)
    doc.multi_cell(90, 8, long_title, new_x="LMARGIN", new_y="NEXT")     # wraps onto a second line
    doc.ln(4)
    doc.multi_cell(0, 7, "Subsets of a vector are selected with an index vector in square brackets.",
                   new_x="LMARGIN", new_y="NEXT")
    doc.output(str(tmp_path / "intro.pdf"))
    (number, records), = pdf.page_records(str(tmp_path / "intro.pdf"))

    def heading(sentence):
        return next(r.source.get("heading") for r in records if sentence in r.text)
    assert heading("The paste() function joins its arguments") == "1 Character vectors"
    assert heading("Subsets of a vector are selected") == long_title
