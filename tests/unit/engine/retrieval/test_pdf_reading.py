"""PDF text as a person reads it: real PDFs written by fpdf2 with running headers and footers,
page numbers, a contents page, words hyphenated at line ends and an outline (bookmarks)."""

import pytest

from engine.retrieval import pdf
from engine.retrieval.chunker import chunk_records

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (a dev dependency) writes the test PDFs")
pytest.importorskip("pypdfium2", reason="PDFium (the retrieval extra) reads PDFs")

HEADER = "Storage Operations Handbook - revision 7"

SECTIONS = [
    # (outline level, title, lines of body text)
    (0, "1 Backups", ["Backups run every night at two in the morning from the scheduler host.",
                      "The nightly job copies the customer infor-",
                      "mation to the tape library in the basement.",
                      "Tapes rotate weekly and the oldest set goes offsite."]),
    (1, "1.1 Restore", ["To restore a folder, open a ticket with the storage team first.",
                        "We buy cartridges from a well-",
                        "known vendor; every well-known vendor ships within a week.",
                        "A restore of one terabyte takes about three hours."]),
    (0, "2 Monitoring", ["Disk usage alerts fire at ninety percent on every volume.",
                         "The pager rota lists the engineer on call for each week."]),
    (1, "2.1 Escalation", ["If the engineer on call does not answer in fifteen minutes,",
                           "the alert escalates to the team lead by phone."]),
]


class Handbook(fpdf.FPDF):
    def header(self):
        self.set_font("Helvetica", size=9)
        self.cell(0, 6, HEADER, new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 6, f"Page {self.page_no()}", align="C")


def write_handbook(path):
    doc = Handbook()
    doc.add_page()                                  # page 1: contents
    doc.set_font("Helvetica", "B", 14)
    doc.cell(0, 10, "Contents", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", size=11)
    for i, (level, title, _) in enumerate(SECTIONS):
        doc.cell(0, 7, f"{'    ' * level}{title} " + ". " * 30 + f"{i + 2}", new_x="LMARGIN", new_y="NEXT")
    for level, title, body in SECTIONS:             # pages 2-5: one section each
        doc.add_page()
        doc.start_section(title, level=level)
        doc.set_font("Helvetica", "B", 14 - 2 * level)
        doc.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", size=11)
        for line in body:
            doc.cell(0, 7, line, new_x="LMARGIN", new_y="NEXT")
    doc.add_page()                                  # page 6: no outline entry, still section 2.1
    doc.set_font("Helvetica", size=11)
    doc.cell(0, 7, "The team lead may page the storage vendor after midnight.", new_x="LMARGIN", new_y="NEXT")
    doc.output(str(path))
    return str(path)


@pytest.fixture
def handbook(tmp_path):
    return write_handbook(tmp_path / "handbook.pdf")


def _text(pages):
    return "\n".join("\n".join(lines) for _, lines in pages)


def test_running_headers_footers_and_page_numbers_are_not_text(handbook):
    got = pdf.pages(handbook)
    assert [n for n, _ in got] == [1, 2, 3, 4, 5, 6]
    for n, lines in got:
        assert HEADER not in lines, (n, lines)
        assert not any(ln.strip().startswith("Page ") for ln in lines), (n, lines)
    text = _text(got)
    assert "Backups run every night" in text and "The pager rota lists the engineer" in text


def test_a_word_cut_at_a_line_end_is_joined_and_a_compound_keeps_its_hyphen(handbook):
    text = _text(pdf.pages(handbook))
    assert "customer information" in text and "infor-" not in text and "infor\n" not in text
    assert "well-known vendor;" in text and "wellknown" not in text


def test_contents_page_is_marked_and_body_pages_are_not(handbook):
    recs = dict(pdf.page_records(handbook))
    assert recs[1] and all(r.source.get("toc") is True for r in recs[1])
    assert not any(r.source.get("toc") for page in (2, 3, 4, 5, 6) for r in recs[page])
    chunks = chunk_records(recs[1], "s", is_log=False, page=1)
    assert all(c.toc for c in chunks)
    # The dense side sees the title only, not the list of every topic's words.
    assert not any("Monitoring" in t for c in chunks for t in c.embed_texts)


def test_records_know_their_section_from_the_outline(handbook):
    recs = dict(pdf.page_records(handbook))

    def heading_of(page, words):
        return next(r.source.get("heading") for r in recs[page] if words in r.text)

    assert heading_of(2, "Tapes rotate weekly") == "1 Backups"
    assert heading_of(3, "terabyte") == "1 Backups > 1.1 Restore"
    assert heading_of(4, "ninety percent") == "2 Monitoring"
    assert heading_of(5, "fifteen minutes") == "2 Monitoring > 2.1 Escalation"
    assert heading_of(6, "after midnight") == "2 Monitoring > 2.1 Escalation"   # carried over the page break
    chunk = chunk_records(recs[3], "s", is_log=False, page=3)[0]
    assert chunk.heading == "1 Backups > 1.1 Restore" and chunk.page == 3
    assert chunk.embed_texts[0].startswith("1 Backups > 1.1 Restore\n")


def test_line_numbers_count_within_the_page(handbook):
    recs = dict(pdf.page_records(handbook))
    lines = dict(pdf.pages(handbook))
    for page, records in recs.items():
        for r in records:
            assert 1 <= r.line_start <= r.line_end <= len(lines[page])
            assert r.text == "\n".join(lines[page][r.line_start - 1:r.line_end])


def test_cleaning_rules_on_their_own():
    vocab = {"information", "well-known", "re-enter"}
    assert pdf._dehyphenate(["the infor-", "mation is"], vocab) == ["the information", "is"]
    assert pdf._dehyphenate(["a well-", "known vendor"], vocab) == ["a well-known", "vendor"]
    assert pdf._dehyphenate(["the re-", "enter key"], vocab) == ["the re-enter", "key"]
    assert pdf._dehyphenate(["Use the -", "option"], vocab) == ["Use the -", "option"]     # no word before
    assert pdf._dehyphenate(["Jean-", "Paul came"], vocab) == ["Jean-", "Paul came"]      # a name
    assert pdf._dehyphenate(["reposi\ufffetory here"], set()) == ["repository here"]      # PDFium's mark
    assert pdf._dehyphenate(["application-specific-pass\ufffeword"], set()) == ["application-specific-pass-word"]
    assert pdf.is_toc_page(["Contents"] + [f"{i} Topic {i} . . . . . . . {i * 3}" for i in range(1, 8)])
    assert pdf.is_toc_page([f"term{i}, {i * 7}" for i in range(12)])                      # an index
    assert not pdf.is_toc_page(["A paragraph of prose that explains the system.", "It ends in 2024.",
                                "Another sentence follows here.", "And one more line of text."])
