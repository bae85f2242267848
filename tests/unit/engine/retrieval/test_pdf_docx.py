"""PDF and Word files: real files written by fpdf2 and python-docx, indexed and searched, and the
ones that must be skipped (password, scanned images, damaged, zip bombs) with their reasons."""

import glob
import os
import zipfile

import pytest

from engine.retrieval import loaders, pdf, word
from engine.retrieval.loaders import SkipFile

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (a dev dependency) writes the test PDFs")
docx = pytest.importorskip("docx", reason="python-docx (the retrieval extra) reads and writes .docx")

PAGES = [
    ["Quarterly operations report", "", "This document covers the storage cluster during spring."],
    ["Incident review", "", "The backup job failed because the tape library ran out of cartridges.",
     "Operators ordered new cartridges from the vendor."],
    ["Appendix", "", "Contact the on-call engineer through the pager rota."],
]


def write_pdf(path, pages, password=None):
    doc = fpdf.FPDF()
    doc.set_font("Helvetica", size=12)
    for lines in pages:
        doc.add_page()
        for line in lines:
            doc.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    if password:
        doc.set_encryption(owner_password="owner-secret", user_password=password)
    doc.output(str(path))
    return path


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"   # beside the index's data folder, not around it
    d.mkdir()
    return d


def test_pdf_pages_keep_their_numbers_and_the_hit_names_page_2(index, docs):
    f = write_pdf(docs / "report.pdf", PAGES)
    got = pdf.pages(str(f))
    assert [n for n, _ in got] == [1, 2, 3] and "tape library" in " ".join(got[1][1])
    assert loaders.classify(str(f), loaders.head_of(str(f))) == "pdf"
    report = index.index(docs)
    assert report.files == 1 and not report.skipped and report.chunks_added >= 3
    hit = index.search("why did the backup job fail?", k=3)[0]
    assert hit.path == str(f) and hit.page == 2 and "cartridges" in hit.text
    assert hit.line_start >= 1 and hit.line_end <= 4     # lines within page 2, not the whole file
    again = index.index(docs)
    assert again.unchanged == 1 and again.chunks_added == 0


def test_pdfs_that_cannot_be_read_are_skipped_with_reasons(index, docs):
    write_pdf(docs / "locked.pdf", PAGES, password="let-me-in")
    blank = fpdf.FPDF()
    blank.add_page()
    blank.rect(20, 20, 100, 60, style="F")     # a drawing and no text: what a scan looks like to a parser
    blank.output(str(docs / "scan.pdf"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage\n%%EOF\n")
    write_pdf(docs / "good.pdf", PAGES)
    report = index.index(docs)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
    assert "password" in reasons["locked.pdf"]
    assert "no extractable text" in reasons["scan.pdf"] and "OCR" in reasons["scan.pdf"]
    assert "damaged" in reasons["broken.pdf"] or "no extractable text" in reasons["broken.pdf"]
    assert report.files == 1 and index.search("tape library", k=1)[0].path.endswith("good.pdf")


def write_docx(path):
    d = docx.Document()
    d.add_heading("Release checklist", level=1)
    d.add_paragraph("Tag the release and build the installers.")
    d.add_heading("Database", level=2)
    d.add_paragraph("Run the schema migration before switching traffic.")
    t = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Host", "Role", "Port"), ("db-eu-7", "primary", "5432"),
                             ("db-eu-8", "replica", "5433")]):
        for c, text in enumerate(row):
            t.cell(r, c).text = text
    d.add_paragraph("Check replication lag after the switch.")
    d.save(str(path))
    return path


def test_docx_paragraphs_and_table_rows(index, docs):
    f = write_docx(docs / "checklist.docx")
    texts = [t for t, _ in word.blocks(str(f))]
    assert "db-eu-8 | replica | 5433" in texts and "Run the schema migration before switching traffic." in texts
    assert loaders.classify(str(f), loaders.head_of(str(f))) == "docx"
    report = index.index(docs)
    assert report.files == 1 and not report.skipped
    hit = index.search("db-eu-8", k=1)[0]
    assert hit.path == str(f) and "db-eu-8 | replica | 5433" in hit.text and hit.page is None
    n = texts.index("db-eu-8 | replica | 5433") + 1
    assert hit.line_start <= n <= hit.line_end


def test_bad_docx_is_refused_before_parsing(tmp_path):
    notdocx = tmp_path / "fake.docx"
    with zipfile.ZipFile(notdocx, "w") as z:
        z.writestr("hello.txt", "not a word document")
    with pytest.raises(SkipFile, match="without a Word document"):
        word.records(str(notdocx))
    (tmp_path / "cut.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(SkipFile, match="damaged zip"):
        word.records(str(tmp_path / "cut.docx"))
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/padding.xml", b"\x00" * (8 << 20))     # 8 MB of zeros deflate ~1000x
    with pytest.raises(SkipFile, match="zip bomb"):
        word.records(str(bomb))


# `make` downloads the sdist into .venv/fixtures with the rest of the set-up.
SDIST_DIRS = [os.environ.get("LANTERN_DOCX_SDIST_DIR", ""),
              os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".venv", "fixtures"), "/tmp/pydocx-sdist"]
SAMPLE = "features/steps/test_files/blk-paras-and-tables.docx"


def _sdist_docx(dest) -> str | None:
    """A real Word file (not written by this test) from the python-docx sdist, if one is on disk."""
    import tarfile

    for d in filter(None, SDIST_DIRS):
        for tgz in sorted(glob.glob(os.path.join(d, "python_docx-*.tar.gz"))):
            with tarfile.open(tgz) as t:
                member = next((m for m in t.getmembers() if m.name.endswith(SAMPLE)), None)
                if member is not None:
                    out = dest / "sample.docx"
                    out.write_bytes(t.extractfile(member).read())
                    return str(out)
    return None


def test_a_real_word_file_from_the_python_docx_sources(tmp_path):
    path = _sdist_docx(tmp_path)
    if path is None:
        pytest.skip("no python-docx sdist in .venv/fixtures (make downloads it); or: pip download --no-binary :all: "
                    "--no-deps python-docx -d /tmp/pydocx-sdist (or set LANTERN_DOCX_SDIST_DIR)")
    texts = [t for t, _ in word.blocks(path)]
    # Paragraphs around a one-cell table, in reading order.
    assert texts[:3] == ["Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "Text before Text after",
                         "Donec semper facilisis metus finibus malesuada."], texts
