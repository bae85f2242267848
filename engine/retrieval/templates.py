"""Log message templates: the text of a record with its variable parts masked.

Logs repeat themselves ("connection from 10.0.0.7 port 51234" a million times with other
numbers). Embedding each line would cost hours and teach the vector index nothing; the
template ("connection from <IP> port <NUM>") carries the meaning, so the embedder sees each
template once (cached by its hash). The lexical index still gets every real line, so a search
for the exact IP finds the exact record.
"""

from __future__ import annotations

import hashlib
import re

_MASKS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<UUID>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TIME>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<TIME>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<IP>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b"), "<IP>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<HEX>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b"), "<HEX>"),
    # Digits inside names count too: worker-3, h7.example and svc12 are one template each.
    (re.compile(r"\d+(?:\.\d+)?"), "<NUM>"),
    (re.compile(r"\s+"), " "),
]

# Embedding text is cut here: MiniLM sees 256 word pieces; a long trace adds nothing after.
MAX_TEMPLATE_CHARS = 1000


def template_of(text: str) -> str:
    t = text[:MAX_TEMPLATE_CHARS * 2]
    for pattern, repl in _MASKS:
        t = pattern.sub(repl, t)
    return t.strip()[:MAX_TEMPLATE_CHARS]


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()
