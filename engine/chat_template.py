"""Turn a list of chat messages into the prompt text a model was trained on.

GGUF files carry their chat template as Jinja source in ``tokenizer.chat_template``. That
source comes from whoever made the file, so it is rendered in Jinja's immutable sandbox: it
can format strings, but cannot reach Python internals or change anything. A template that
is missing, does not compile, or breaks the sandbox rules is replaced by ChatML, which most
small instruct models understand, and the reason is reported so the UI can tell the person.

The sandbox bounds what a template may touch, not how long it runs or how much it writes, so
rendering is capped too: a deadline (``RENDER_TIMEOUT_S``) that interrupts the render, and a
size budget for the output and for every string the template builds on the way (repetition,
concatenation, joins, padding). A template that goes past a cap while being tried at load
time fails the load with a message naming the model's template.

The template writes the control tokens (``<|im_start|>``); the messages are the person's text
and their sources' text, which must never become control tokens however they are spelled.
``render`` returns a ``RenderedPrompt`` that knows where each message's content lies in it, and
``ControlTokens.tokenize`` parses control tokens only outside those spans.
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_STOPS = ("<|im_end|>", "<|im_start|>")

# Templates above this size are not chat templates; refuse them rather than compile them.
MAX_TEMPLATE_CHARS = 256 * 1024
# Real templates render a long conversation in milliseconds.
RENDER_TIMEOUT_S = 2.0
# What a template may write: the messages (a few templates repeat the system prompt), plus
# this much of its own. Also the cap on any one string or list it builds on the way.
MAX_OUTPUT_FACTOR = 4
MAX_OUTPUT_EXTRA = 1 << 20


class TemplateRejected(ValueError):
    pass


class TemplateLimit(TemplateRejected):
    """The template went past a rendering cap (time or size)."""


# ---------------------------------------------------------------------------- prompt text

class RenderedPrompt(str):
    """Prompt text plus the spans ``(start, end)`` that hold message content.

    Outside the spans is what the template wrote: control tokens there are real. Inside them
    is the person's or a source's text: always text. A plain ``str`` is all text."""

    content_spans: tuple[tuple[int, int], ...] = ()

    def __new__(cls, text: str, content_spans=()):
        s = super().__new__(cls, text)
        s.content_spans = tuple(content_spans)
        return s


class ControlTokens:
    """A model's control tokens by their text, and the tokenizer that honours them only
    where the template wrote them.

    ``tokens``: text -> token id; ``lstrip``/``rstrip``: texts of tokens that swallow the
    whitespace before/after them (as llama.cpp does when it parses special tokens)."""

    def __init__(self, tokens: dict[str, int], lstrip: frozenset = frozenset(), rstrip: frozenset = frozenset()):
        self.ids = {t: i for t, i in tokens.items() if t}
        self.lstrip, self.rstrip = lstrip, rstrip
        # Longest first, as llama.cpp partitions: "<|im_start|>" before a "<|" token.
        texts = sorted(self.ids, key=len, reverse=True)
        self._re = re.compile("|".join(map(re.escape, texts))) if texts else None

    def occurs_in(self, text: str) -> bool:
        return bool(self._re and self._re.search(text))

    def tokenize(self, prompt: str, text_tokens: Callable[[str], list[int]]) -> list[int]:
        """Token ids of ``prompt``. ``text_tokens(s)`` tokenizes plain text (no special-token
        parsing). Control tokens are taken only from the template's parts of a
        ``RenderedPrompt``; text between them is tokenized whole, across content boundaries,
        exactly as the model's tokenizer would with special parsing on."""
        if not isinstance(prompt, RenderedPrompt):
            return text_tokens(prompt)
        out: list[int] = []
        raw: list[str] = []
        eat_space = False

        def add_text(s: str) -> None:
            nonlocal eat_space
            if eat_space:
                s = s.lstrip()
                eat_space = not s
            if s:
                raw.append(s)

        def flush() -> None:
            if raw:
                text = "".join(raw)
                raw.clear()
                if text:
                    out.extend(text_tokens(text))

        pos = 0
        for start, end in [*prompt.content_spans, (len(prompt), len(prompt))]:
            template_part = prompt[pos:start]
            at = 0
            for m in (self._re.finditer(template_part) if self._re else ()):
                add_text(template_part[at:m.start()])
                tok = m.group(0)
                if tok in self.lstrip and raw:
                    raw[:] = ["".join(raw).rstrip()]
                flush()
                out.append(self.ids[tok])
                eat_space = tok in self.rstrip
                at = m.end()
            add_text(template_part[at:])
            add_text(prompt[start:end])       # content: text, whatever it spells
            pos = end
        flush()
        return out


def merge_turns(messages: list[dict]) -> list[dict]:
    """Consecutive messages of one role as one message.

    A reply that failed or was cut off is not sent, which leaves two user messages in a row;
    many templates enforce user/assistant alternation and would refuse every later prompt of
    that conversation. Merged, nothing the person wrote is lost and the turns alternate."""
    out: list[dict] = []
    for m in messages:
        prev = out[-1] if out else None
        if (prev is not None and m.get("role") in ("user", "assistant") and prev.get("role") == m.get("role")
                and isinstance(prev.get("content"), str) and isinstance(m.get("content"), str)):
            out[-1] = {**prev, "content": prev["content"].rstrip() + "\n\n" + m["content"].lstrip()}
        else:
            out.append(dict(m))
    return out


# ---------------------------------------------------------------------------- the formatter

@dataclass
class ChatFormatter:
    source: str
    origin: str          # "model" or "fallback"
    note: str            # for the person: why the fallback was used, or ""
    bos_token: str = ""
    eos_token: str = ""
    label: str = ""      # whose template, for messages: "the chat template of 'x.gguf'"
    control: ControlTokens | None = None   # the model's control tokens, once known

    def __post_init__(self):
        self._template = _compile(self.source)
        self._warned = False

    @property
    def stop_strings(self) -> tuple[str, ...]:
        # The fallback's end marker is text, not necessarily a special token of the model.
        return CHATML_STOPS if self.origin == "fallback" else ()

    @property
    def name(self) -> str:
        if self.origin == "fallback":
            return "the ChatML template"
        return f"the chat template of '{self.label}'" if self.label else "the model's chat template"

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> RenderedPrompt:
        """The prompt for ``messages``; an EngineError naming the template when it cannot."""
        import jinja2

        try:
            return self.render_raw(messages, add_generation_prompt)
        except TemplateLimit as e:
            raise EngineError(ErrorKind.BAD_INPUT,
                              f"{self.name[0].upper()}{self.name[1:]} {e} while formatting this conversation. "
                              "Start a new conversation, or load another file of this model.") from None
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, OverflowError, RecursionError) as e:
            raise EngineError(ErrorKind.BAD_INPUT,
                              f"{self.name[0].upper()}{self.name[1:]} could not format this conversation "
                              f"({type(e).__name__}: {e}). Start a new conversation, or load another file "
                              "of this model.") from None

    def render_raw(self, messages: list[dict], add_generation_prompt: bool = True) -> RenderedPrompt:
        """As ``render``, raising the template's own exceptions."""
        messages = merge_turns(messages)
        text = self._render_text(messages, add_generation_prompt)
        return self._locate_content(text, messages, add_generation_prompt)

    def _render_text(self, messages: list[dict], add_generation_prompt: bool) -> str:
        content = sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))
        budget = MAX_OUTPUT_EXTRA + MAX_OUTPUT_FACTOR * content
        env = self._template.environment
        env.lantern_budget = budget
        parts: list[str] = []
        n = 0
        try:
            with _deadline(RENDER_TIMEOUT_S) as deadline:
                for piece in self._template.generate(messages=messages, add_generation_prompt=add_generation_prompt,
                                                     bos_token=self.bos_token, eos_token=self.eos_token):
                    n += len(piece)
                    if n > budget:
                        raise TemplateLimit(f"wrote more than {budget:,} characters")
                    parts.append(piece)
                deadline.disarm()
        except _Overtime:
            raise TemplateLimit(f"took longer than {RENDER_TIMEOUT_S:g} s") from None
        return "".join(parts)

    def _locate_content(self, text: str, messages: list[dict], add_generation_prompt: bool) -> RenderedPrompt:
        """Find each message's content in ``text``: render again with a unique marker in
        place of each content (its leading and trailing whitespace kept outside the marker,
        so a template's ``trim`` still applies), then put the contents back and check that
        this gives ``text`` exactly."""
        if self.control is not None and not any(
                isinstance(m.get("content"), str) and self.control.occurs_in(m["content"]) for m in messages):
            # No message spells a control token: every one in ``text`` is the template's, and
            # the second rendering below is not needed (the usual case, at half the cost).
            return RenderedPrompt(text)
        nonce = secrets.token_hex(8)
        marker = re.compile("\ue000" + nonce + r":(\d+)\ue001")
        marked, cores = [], {}
        for i, m in enumerate(messages):
            c = m.get("content")
            if isinstance(c, str) and c.strip():
                core = c.strip()
                cores[i] = core
                lead, trail = c[:len(c) - len(c.lstrip())], c[len(c.rstrip()):]
                marked.append({**m, "content": f"{lead}\ue000{nonce}:{i}\ue001{trail}"})
            else:
                marked.append(m)
        if not cores:
            return RenderedPrompt(text)
        try:
            shape = self._render_text(marked, add_generation_prompt)
        except Exception as e:  # the template reads the content (not just places it): see below
            log.debug("marked render failed: %s", e)
            shape = None
        rebuilt, spans = [], []
        if shape is not None:
            pos, length = 0, 0
            for m in marker.finditer(shape):
                piece = shape[pos:m.start()]
                rebuilt.append(piece)
                length += len(piece)
                core = cores[int(m.group(1))]
                rebuilt.append(core)
                spans.append((length, length + len(core)))
                length += len(core)
                pos = m.end()
            rebuilt.append(shape[pos:])
        if shape is not None and "".join(rebuilt) == text:
            return RenderedPrompt(text, spans)
        # The template changes the content it places (or branches on it). When no content
        # spells a control token, every control token in ``text`` is the template's own.
        if self.control is not None and not any(self.control.occurs_in(c) for c in cores.values()):
            return RenderedPrompt(text)     # no spans: the whole text may hold control tokens
        if not self._warned:
            self._warned = True
            log.warning("%s changes the messages it formats; a message spells a control token, so the "
                        "messages are placed as written", self.name)
        if shape is not None:
            return RenderedPrompt("".join(rebuilt), spans)
        return RenderedPrompt(text, [(0, len(text))])   # nothing located: all of it is text


REFIRE_S = 0.05


class _Overtime(BaseException):
    """Raised inside a render that ran past its deadline (a BaseException, so that nothing in
    the template's own error handling can swallow it)."""


class _deadline:
    """Stop a render that runs longer than ``seconds``.

    A timer raises ``_Overtime`` in the rendering thread (CPython's PyThreadState_SetAsyncExc,
    delivered between bytecodes, so also inside a loop that never calls anything). It costs
    nothing while a template behaves: a line tracer made real templates 3x slower. Use as::

        with _deadline(2.0) as d:
            ... render ...
            d.disarm()

    and catch ``_Overtime`` around the ``with``: it may arrive anywhere up to ``disarm``."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._lock = threading.Lock()
        self._armed = False
        self._fired = False

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self._fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread), ctypes.py_object(_Overtime))
                # Delivered inside a callback the interpreter runs for itself (a weakref's, during
                # garbage collection), the exception is printed and swallowed, and the render goes
                # on: fire again until the render is over.
                self._timer = threading.Timer(REFIRE_S, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def __enter__(self):
        self._thread = threading.get_ident()
        self._armed = True
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def disarm(self) -> None:
        with self._lock:
            if self._armed:
                self._armed = False
                if self._fired:    # fired as the render ended and not delivered yet: take it back
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread), None)
            self._timer.cancel()   # under the lock: the timer a firing scheduled last

    def __exit__(self, *exc):
        self.disarm()


# ---------------------------------------------------------------------------- the sandbox

_SIZED_METHODS = {"center", "ljust", "rjust", "zfill"}


def _too_big(env, n: int, what: str) -> None:
    budget = getattr(env, "lantern_budget", MAX_OUTPUT_EXTRA)
    if n > budget:
        raise TemplateLimit(f"tried to build {what} of {n:,} characters or items (the cap is {budget:,})")


def _estimated_join(env, items: list, sep: str) -> None:
    _too_big(env, sum(len(str(x)) for x in items) + len(sep) * max(0, len(items) - 1), "a joined text")


def _estimated_replace(env, s: str, old: str, new: str) -> None:
    hits = s.count(old) if old else len(s) + 1
    _too_big(env, len(s) + hits * max(0, len(new) - len(old)), "a replaced text")


def _big_numbers(text: str) -> int:
    return max((int(d) for d in re.findall(r"\d{6,}", text)), default=0)


def _make_env():
    import jinja2
    import jinja2.ext
    from jinja2 import filters as jf
    from jinja2.runtime import markup_join, str_join
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class CappedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%"})
        lantern_budget = MAX_OUTPUT_EXTRA

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, int) and abs(right) > 1024:
                raise TemplateLimit(f"tried to raise a number to the power {right}")
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                        _too_big(self, len(seq) * n, "a repeated text or list")
            if operator == "%" and isinstance(left, str):
                args = right if isinstance(right, tuple) else (right,)
                _too_big(self, max([_big_numbers(left)] + [a for a in args if isinstance(a, int) and "*" in left]),
                         "a formatted text")
            return super().call_binop(context, operator, left, right)

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
            method = getattr(__obj, "__wrapped__", __obj)    # the sandbox wraps str.format
            owner = getattr(method, "__self__", None)
            name = getattr(method, "__name__", "")
            if isinstance(owner, str):
                if name == "join" and args:
                    items = list(args[0])
                    _estimated_join(__self, items, owner)
                    args = (items, *args[1:])
                elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                    _estimated_replace(__self, owner, args[0], args[1])
                elif name in _SIZED_METHODS and args and isinstance(args[0], int):
                    _too_big(__self, args[0], "a padded text")
                elif name == "expandtabs":
                    _too_big(__self, len(owner) + owner.count("\t") * int(args[0] if args else 8), "a text")
                elif name in ("format", "format_map"):
                    _too_big(__self, _big_numbers(owner), "a formatted text")
            return super().call(__context, __obj, *args, **kwargs)

    env = CappedSandbox(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )

    def capped(join):
        def run(seq):
            seq = list(seq)
            _estimated_join(env, seq, "")
            return join(seq)
        return run

    env.concat = capped("".join)        # block and macro output
    env.lantern_joins = {"str_join": capped(str_join), "markup_join": capped(markup_join)}  # the ~ operator

    @jinja2.pass_eval_context
    def join_filter(eval_ctx, value, d="", attribute=None):
        items = list(value) if attribute is None else [env.getitem(x, attribute) for x in value]
        _estimated_join(env, items, str(d))
        return jf.do_join(eval_ctx, items, d)

    def replace_filter(eval_ctx, s, old, new, count=None):
        _estimated_replace(env, str(s), str(old), str(new))
        return jf.do_replace(eval_ctx, s, old, new, count)

    def center_filter(value, width=80):
        _too_big(env, int(width), "a centred text")
        return jf.do_center(value, width)

    def indent_filter(s, width=4, first=False, blank=False):
        w = len(width) if isinstance(width, str) else int(width)
        _too_big(env, len(str(s)) + (str(s).count("\n") + 1) * w, "an indented text")
        return jf.do_indent(s, width, first, blank)

    def format_filter(value, *args, **kwargs):
        _too_big(env, max([_big_numbers(str(value))] + [a for a in args if isinstance(a, int)]), "a formatted text")
        return jf.do_format(value, *args, **kwargs)

    env.filters.update({
        "join": join_filter, "replace": jinja2.pass_eval_context(replace_filter), "center": center_filter,
        "indent": indent_filter, "format": format_filter,
    })
    return env


def _compile(source: str):
    # Imported here: jinja2's sandbox is only needed once a model is loaded.
    import jinja2

    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateRejected(f"the template is {len(source)} characters long")

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env = _make_env()
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        template = env.from_string(source)
    except jinja2.TemplateError as e:
        raise TemplateRejected(f"the template does not compile: {e}") from None
    # The compiled template's own module namespace: its `~` joins go through the caps.
    template.root_render_func.__globals__.update(env.lantern_joins)
    return template


def _probe(fmt: ChatFormatter) -> None:
    """Render a small conversation so that a hostile or broken template fails now, at load
    time, and not in the middle of the person's first question."""
    sample = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ]
    out = fmt.render_raw(sample)
    if "U2" not in out:
        raise TemplateRejected("the template drops the user's message")


def make_formatter(template: str | None, bos_token: str = "", eos_token: str = "", *, label: str = "",
                   control: ControlTokens | None = None) -> ChatFormatter:
    """The model's own template when it is usable, else ChatML with a note saying why.

    A template that goes past a rendering cap (time, size, the sandbox's range limit) is not
    replaced: it is refused, with an EngineError naming it (``label``: the model's file name),
    and the model is not loaded."""
    import jinja2
    from jinja2.sandbox import SecurityError

    if template:
        try:
            fmt = ChatFormatter(template, "model", "", bos_token, eos_token, label, control)
            _probe(fmt)
            return fmt
        except (TemplateLimit, OverflowError, MemoryError) as e:
            whose = f"The chat template in '{label}'" if label else "The model's chat template"
            reason = str(e) if isinstance(e, TemplateLimit) else f"went past a limit of the sandbox ({e})"
            raise EngineError(
                ErrorKind.UNSUPPORTED_FORMAT,
                f"{whose} {reason} while formatting a four-message test conversation, so the model was not "
                "loaded. The file's template is broken or hostile: use another file of this model, for "
                "example one from the model's original publisher.") from None
        except SecurityError as e:
            note = f"The model's chat template tried to leave the sandbox ({e}); using the ChatML template instead."
        except (TemplateRejected, jinja2.TemplateError, TypeError, ValueError, KeyError) as e:
            note = f"The model's chat template could not be used ({e}); using the ChatML template instead."
        except RecursionError:
            note = "The model's chat template recursed without end; using the ChatML template instead."
        log.warning(note)
    else:
        note = "The model has no chat template; using the ChatML template."
    return ChatFormatter(CHATML, "fallback", note, bos_token, eos_token, label, control)
