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
    assert lexical.match_terms("what about 10.0.0.5?") == ["10_d0_d0_d5"]
    assert lexical.match_terms("the of and") == []


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


def test_rare_words_go_to_the_index_and_common_ones_are_scored_after():
    df = {"payment": 90000, "service": 120000, "time": 40000, "out": 1500, "zq_h17": 3, "gateway": 800}
    assert lexical.split_rare(["payment", "gateway", "zq_h17", "nowhere"], df, budget=5000) == \
        (["zq_h17", "gateway"], ["payment"])
    # The budget counts postings: "out" fits after the two rarer ones, "time" does not.
    assert lexical.split_rare(["time", "out", "gateway", "zq_h17"], df, budget=5000) == \
        (["zq_h17", "gateway", "out"], ["time"])
    assert lexical.split_rare(["payment", "service"], df, budget=5000) == ([], ["payment", "service"])
    assert lexical.split_rare(["nowhere"], df) == ([], [])
    assert lexical.decode(lexical.match_terms("10.0.0.5")[0]) == "10.0.0.5"

    # Python BM25: the chunk with the rare word and more of the query's words ranks first; a chunk
    # with none of them scores 0.
    zq = lexical.match_terms("zq-h17")[0]    # as the index spells it
    s = lexical.Scorer(["gateway", "payment", zq], {**df, zq: 3}, n_docs=200000)
    texts = ["payment gateway refused zq-h17", "payment accepted", "gateway timeout for payment", "disk full"]
    got = s.scores(texts)
    assert got[0] > got[2] > got[1] > 0 and got[3] == 0


def test_long_document_blocks_are_cut_to_what_the_embedder_reads():
    from engine.retrieval.chunker import MAX_CHARS
    from engine.retrieval.logformat import Record

    sentence = "The settlement batch is retried three times before the on-call engineer is paged. "
    para = Record(7, 7, sentence * 40, message=sentence * 40)            # one long line (a Word paragraph)
    lines = [f"line {i}: " + "x" * 300 for i in range(12)]
    block = Record(20, 31, "\n".join(lines), message="\n".join(lines))   # twelve lines of a text block
    chunks = chunk_records([para, block], "s1", is_log=False)
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert all(len(t) <= MAX_CHARS + 1 for c in chunks for t in c.embed_texts)
    from_para = [c for c in chunks if c.line_start == 7]
    assert len(from_para) >= 3 and all(c.line_end == 7 and c.text.endswith(".") for c in from_para)
    assert "".join(c.text.replace(" ", "") for c in from_para) == (sentence * 40).replace(" ", "")
    # Lines keep their own numbers: together the pieces cover 20-31 once, in order.
    from_block = [c for c in chunks if c.line_start >= 20]
    covered = [n for c in from_block for n in range(c.line_start, c.line_end + 1)]
    assert covered == list(range(20, 32)) and len(from_block) >= 3
    # A log record is never cut, however long.
    trace = Record(1, 40, "\n".join(lines * 3))
    assert len(chunk_records([trace], "s2", is_log=True)) == 1
