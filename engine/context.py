"""Fit a conversation into the model's context window, visibly.

The budget is: prompt (system + history + the new message) + room for the answer <= n_ctx.
When it does not fit, the oldest turns are left out, a whole turn at a time, and the caller
is told how many, so the UI can say so; the system prompt and the newest user message are
never dropped. If even those do not fit, that is an error the person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.protocol import EngineError, ErrorKind

# The answer gets at most half the window: a long max_tokens must not squeeze out all history.
MAX_ANSWER_SHARE = 0.5


@dataclass
class FittedPrompt:
    text: str
    tokens: list[int]
    dropped_messages: int
    answer_room: int

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def answer_room(n_ctx: int, max_tokens: int) -> int:
    return max(1, min(max_tokens, int(n_ctx * MAX_ANSWER_SHARE)))


def fit_messages(
    messages: list[dict],
    n_ctx: int,
    max_tokens: int,
    render: Callable[[list[dict]], str],
    tokenize: Callable[[str], list[int]],
) -> FittedPrompt:
    if not messages or messages[-1].get("role") != "user" or not str(messages[-1].get("content", "")).strip():
        raise EngineError(ErrorKind.BAD_INPUT, "The conversation must end with a non-empty user message.")
    room = answer_room(n_ctx, max_tokens)
    budget = n_ctx - room

    system = [m for m in messages[:1] if m.get("role") == "system"]
    history = messages[len(system):]

    dropped = 0
    while True:
        text = render(system + history)
        tokens = tokenize(text)
        n = len(tokens)
        if n <= budget:
            return FittedPrompt(text, tokens, dropped, room)
        if len(history) <= 1:
            raise EngineError(
                ErrorKind.CONTEXT_OVERFLOW,
                f"The message and system prompt need {n} tokens, but the context window is {n_ctx} tokens "
                f"with {room} kept for the answer. Shorten the message or system prompt, or raise "
                "'Context length' in the conversation settings.",
            )
        # Drop the oldest turn: one message, plus any assistant reply left dangling at the
        # front (most templates expect a user message first).
        history = history[1:]
        dropped += 1
        while len(history) > 1 and history[0].get("role") != "user":
            history = history[1:]
            dropped += 1


# ---------------------------------------------------------------------------- with sources

# Sources may take at most this share of the prompt budget: the rest keeps recent history, so
# a follow-up question ("and the one before?") still has the conversation it refers to.
SOURCES_SHARE = 0.6


@dataclass
class SourceFit:
    fitted: FittedPrompt
    used: list            # (source, tokens) in rank order, as put in the prompt
    dropped: list         # (source, tokens) left out for lack of room
    breakdown: dict       # where the prompt's tokens went, for "Show what was sent"


def fit_with_sources(
    messages: list[dict],
    sources: list,
    n_ctx: int,
    max_tokens: int,
    render: Callable[[list[dict]], str],
    tokenize: Callable[[str], list[int]],
    block: Callable[[object, int], str],
    compose: Callable[[list[dict], list], list[dict]],
) -> SourceFit:
    """Fit ``messages`` plus as many ``sources`` (best first) as the budget allows.

    ``block(source, n)`` is the text one source adds to the prompt; ``compose(messages, used)``
    puts the used sources into the conversation. Nothing is cut silently: every source is
    either used or dropped, with its token count, and the caller reports both.
    """
    room = answer_room(n_ctx, max_tokens)
    budget = n_ctx - room
    system = [m for m in messages[:1] if m.get("role") == "system"]
    minimal = system + messages[-1:]
    n_min = len(tokenize(render(compose(minimal, []))))
    source_budget = max(0, min(budget - n_min, int(budget * SOURCES_SHARE)))

    used, dropped, spent = [], [], 0
    for i, src in enumerate(sources):
        n = len(tokenize(block(src, i + 1)))
        if not dropped and spent + n <= source_budget:
            used.append((src, n))
            spent += n
        else:
            # Keep rank order: once one source does not fit, the lower-ranked ones are not
            # squeezed in around it, so [1] is always the best of what was sent.
            dropped.append((src, n))
    while True:
        try:
            fitted = fit_messages(compose(messages, [s for s, _ in used]), n_ctx, max_tokens, render, tokenize)
            break
        except EngineError as e:
            if e.kind != ErrorKind.CONTEXT_OVERFLOW or not used:
                raise
            dropped.insert(0, used.pop())
    n_system = len(tokenize(system[0]["content"])) if system else 0
    n_sources = sum(n for _, n in used)
    n_question = len(tokenize(str(messages[-1].get("content", ""))))
    breakdown = {
        "n_ctx": n_ctx, "answer_room": room, "prompt": fitted.n_tokens, "system": n_system,
        "sources": n_sources, "question": n_question,
        # Earlier turns plus the chat template's markup and the citing instructions.
        "history_and_template": max(0, fitted.n_tokens - n_system - n_sources - n_question),
        "dropped_messages": fitted.dropped_messages,
        "sources_budget": source_budget,
    }
    return SourceFit(fitted, used, dropped, breakdown)
