"""Chat with sources on the real default model and the real embedder: citations point at the
indexed file's real lines, the budget holds, unrelated questions get no sources, and a chat is
answered while an index job runs."""

import random
import time

import pytest

from engine import protocol as p

pytestmark = pytest.mark.slow

PAYMENT = "".join(f"2026-03-01 09:{m:02d}:00,000 INFO  [main] com.shop.Web - GET /health 200\n" for m in range(50, 60)) + (
    "2026-03-01 10:00:03,120 ERROR [pool-2] com.shop.PaymentService - call to gateway timed out after 30000 ms\n"
    "java.net.SocketTimeoutException: Read timed out\n"
    "\tat com.shop.PaymentClient.charge(PaymentClient.java:88)\n"
    "2026-03-01 10:00:04,000 INFO  [main] com.shop.Web - GET /health 200\n")
SYSLOG = "Mar  1 09:59:58 web1 kernel: [1234.5] eth0: link up\nMar  1 10:00:01 web1 CRON[311]: (root) CMD (run-parts)\n"
QUESTION = "why did the payment service time out on March 1st around 10:00?"


@pytest.fixture(scope="module")
def indexed(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("rag")
    logs = root / "logs"
    logs.mkdir()
    (logs / "payment.log").write_text(PAYMENT)
    (logs / "syslog").write_text(SYSLOG)
    done = engine.call(p.IndexPaths(paths=[str(logs)], data_dir=str(root / "data")), timeout=120)
    assert isinstance(done, p.IndexDone), done
    return root


def ask(engine, root, question, **kw):
    cmd = p.Chat(messages=[{"role": "user", "content": question}], use_sources=True, data_dir=str(root / "data"),
                 sampling={"temperature": 0.0, "max_tokens": kw.pop("max_tokens", 24), "seed": 1}, **kw)
    final = engine.call(cmd)
    assert isinstance(final, p.Done), final
    events = engine.events[cmd.id]
    cites = [e for e in events if isinstance(e, p.Citations)]
    assert len(cites) == 1
    first_token = next(i for i, e in enumerate(events) if isinstance(e, p.Token))
    assert events.index(cites[0]) < first_token   # the window can show cards before the answer
    return cites[0], final


def test_citations_are_the_files_real_lines(engine, indexed):
    ev, done = ask(engine, indexed, QUESTION)
    assert ev.citations, ev
    top = ev.citations[0]
    assert top["n"] == 1 and top["path"].endswith("payment.log")
    assert (top["line_start"], top["line_end"]) == (11, 13)
    lines = (indexed / "logs" / "payment.log").read_text().splitlines()
    for c in ev.citations:
        real = (indexed / "logs" / c["path"].rsplit("/", 1)[-1]).read_text().splitlines()
        assert c["text"].splitlines() == real[c["line_start"] - 1:c["line_end"]]
        assert c["tokens"] > 0
    assert "timed out" in "\n".join(lines[10:13])
    b = ev.budget
    assert b["sources"] == sum(c["tokens"] for c in ev.citations)
    assert b["prompt"] == done.prompt_tokens <= b["n_ctx"] - b["answer_room"]


def test_nothing_relevant_sends_no_sources(engine, indexed):
    ev, _ = ask(engine, indexed, "What is the capital of France?")
    assert ev.citations == [] and ev.found >= 1 and ev.budget["sources"] == 0


def test_budget_drops_sources_visibly(engine, indexed):
    # Every source found is either sent or reported as dropped, and the answer keeps its room.
    ev, done = ask(engine, indexed, QUESTION, sources_k=20)
    b = ev.budget
    assert b["sources"] <= b["sources_budget"]
    assert done.prompt_tokens + b["answer_room"] <= b["n_ctx"]
    assert ev.dropped == len(ev.dropped_chunks)


def test_chat_is_answered_while_an_index_job_runs(engine, tmp_path):
    rng = random.Random(7)
    vocab = [f"{a}{b}" for a in ("alpha", "beta", "gamma", "delta", "omega", "kappa") for b in range(40)]
    logs = tmp_path / "big"
    logs.mkdir()
    for f in range(3):
        (logs / f"svc{f}.log").write_text("".join(
            f"2026-03-0{f + 1} 10:{i // 60 % 60:02d}:{i % 60:02d},000 INFO [w] {' '.join(rng.sample(vocab, 6))}\n"
            for i in range(600)))
    index_id = engine.send(p.IndexPaths(paths=[str(logs)], data_dir=str(tmp_path / "data")))
    time.sleep(0.3)
    t0 = time.monotonic()
    reply = engine.call(p.Chat(messages=[{"role": "user", "content": "Say hi."}],
                               sampling={"temperature": 0.0, "max_tokens": 8, "seed": 1}), timeout=60)
    took = time.monotonic() - t0
    still_indexing = not any(isinstance(e, (p.IndexDone, p.Failed)) for e in engine.events.get(index_id, []))
    engine.send(p.Cancel(target=index_id))
    final = engine.wait(index_id, timeout=120)
    assert isinstance(reply, p.Done) and reply.text
    assert still_indexing, f"the index job ended before the chat ({took:.1f} s); make the corpus bigger"
    assert isinstance(final, (p.Cancelled, p.IndexDone))
