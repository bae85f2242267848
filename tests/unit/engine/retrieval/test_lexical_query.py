"""Identifier tokens for FTS5, time and level words in questions, document blocks, chunk bounds."""

from datetime import datetime

from engine.retrieval import documents, lexical, query
from engine.retrieval.chunker import chunk_records
from engine.retrieval.logformat import detect, parse_records
from retrieval_corpus import JAVA, access_lines


def test_identifiers_stay_whole():
    toks = lexical.tokens("from 10.0.0.5:8080 id 7f3c2a1e-1111-4222-8333-944445555666 ORA-00942: "
                          "host db-01.example.com path /var/log/app.log E1234 alice@corp fe80::1ff:fe23:4567:890a")
    for t in ("10.0.0.5:8080", "10.0.0.5", "7f3c2a1e-1111-4222-8333-944445555666", "ora-00942", "db-01.example.com",
              "/var/log/app.log", "e1234", "alice@corp", "fe80::1ff:fe23:4567:890a", "example", "app"):
        assert t in toks, t
    assert "0" not in toks and "5" not in toks  # no octets on their own
    assert lexical.match_query("what about 10.0.0.5?") == '"10_d0_d0_d5"'
    assert lexical.match_query("the of and") is None


def test_question_time_and_level_words():
    now = datetime(2024, 6, 25, 12, 0)
    i = query.parse("what happened on June 21 at 16:47:48", now)
    assert datetime.fromtimestamp(i.since) == datetime(2024, 6, 21, 16, 47, 48) and i.until - i.since == 1
    i = query.parse("errors between 10:00 and 10:05 yesterday", now)
    assert datetime.fromtimestamp(i.since) == datetime(2024, 6, 24, 10, 0) and i.level_boost == "ERROR"
    assert datetime.fromtimestamp(i.until) == datetime(2024, 6, 24, 10, 6)
    i = query.parse("around 10:00 on March 1st", now)
    assert datetime.fromtimestamp(i.since) == datetime(2024, 3, 1, 9, 50)
    i = query.parse("anything on December 30", now)  # no year, would be in the future: last year
    assert datetime.fromtimestamp(i.since) == datetime(2023, 12, 30)
    assert query.parse("disk full", now).since is None
    assert query.parse_bound("2 hours ago", now) == now.timestamp() - 7200


def test_chunks_end_on_record_boundaries_and_ids_are_stable():
    lines = (JAVA + access_lines(40)).splitlines()
    recs = parse_records(lines, 1, detect(lines))
    chunks = chunk_records(recs, "s1", is_log=True)
    bounds = {(r.line_start, r.line_end) for r in recs}
    for c in chunks:
        assert len(c.records) <= 8
        assert all((a, b) in bounds for a, b, *_ in c.records)
    assert any(c.line_start == 3 and (3, 9) in {(a, b) for a, b, *_ in c.records} for c in chunks) or \
        any((3, 9) == (a, b) for c in chunks for a, b, *_ in c.records)
    again = chunk_records(recs, "s1", is_log=True)
    assert [c.id for c in chunks] == [c.id for c in again]
    # 40 access lines share one template: the embedder would see it once per chunk, not per line
    assert all(len(c.embed_texts) <= 2 for c in chunks[1:])


def test_documents_keep_line_ranges():
    md = "# Title\n\nFirst paragraph\ncontinues.\n\n## Setup\n```\npip install x\n```\n".splitlines()
    blocks = documents.markdown_blocks(md)
    assert [(b.line_start, b.line_end) for b in blocks] == [(1, 1), (3, 4), (6, 6), (7, 9)]
    html = "<html><head><style>p{}</style><script>x()</script></head>\n<body><p>Visible\ntext</p>\n<p>More</p></body>"
    hb = documents.html_blocks(html)
    assert [(b.line_start, b.line_end, b.text) for b in hb] == [(2, 3, "Visible text"), (4, 4, "More")]
    rows = documents.csv_rows('time,level,msg\n2024-06-21T10:00:00Z,ERROR,"two\nlines"\nx,INFO,ok'.splitlines())
    assert [(r.line_start, r.line_end, r.level) for r in rows] == [(2, 3, "ERROR"), (4, 4, "INFO")]
