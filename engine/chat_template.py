"""Turn a list of chat messages into the prompt text a model was trained on.

GGUF files carry their chat template as Jinja source in ``tokenizer.chat_template``. That
source comes from whoever made the file, so it is rendered in Jinja's immutable sandbox: it
can format strings, but cannot reach Python internals or change anything. A template that
is missing, does not compile, or breaks the sandbox rules is replaced by ChatML, which most
small instruct models understand, and the reason is reported so the UI can tell the person.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

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


class TemplateRejected(ValueError):
    pass


@dataclass
class ChatFormatter:
    source: str
    origin: str          # "model" or "fallback"
    note: str            # for the person: why the fallback was used, or ""
    bos_token: str = ""
    eos_token: str = ""

    def __post_init__(self):
        self._template = _compile(self.source)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        # The fallback's end marker is text, not necessarily a special token of the model.
        return CHATML_STOPS if self.origin == "fallback" else ()

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self._template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


def _compile(source: str):
    # Imported here: jinja2's sandbox is only needed once a model is loaded.
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateRejected(f"the template is {len(source)} characters long")

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as e:
        raise TemplateRejected(f"the template does not compile: {e}") from None


def _probe(fmt: ChatFormatter) -> None:
    """Render a small conversation so that a hostile or broken template fails now, at load
    time, and not in the middle of the person's first question."""
    sample = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ]
    out = fmt.render(sample)
    if "U2" not in out:
        raise TemplateRejected("the template drops the user's message")


def make_formatter(template: str | None, bos_token: str = "", eos_token: str = "") -> ChatFormatter:
    """The model's own template when it is usable, else ChatML with a note saying why."""
    import jinja2
    from jinja2.sandbox import SecurityError

    if template:
        try:
            fmt = ChatFormatter(template, "model", "", bos_token, eos_token)
            _probe(fmt)
            return fmt
        except SecurityError as e:
            note = f"The model's chat template tried to leave the sandbox ({e}); using the ChatML template instead."
        except (TemplateRejected, jinja2.TemplateError, TypeError, ValueError, KeyError) as e:
            note = f"The model's chat template could not be used ({e}); using the ChatML template instead."
        except RecursionError:
            note = "The model's chat template recursed without end; using the ChatML template instead."
        log.warning(note)
    else:
        note = "The model has no chat template; using the ChatML template."
    return ChatFormatter(CHATML, "fallback", note, bos_token, eos_token)
