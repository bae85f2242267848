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
