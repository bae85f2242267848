"""The typed, versioned message protocol between the UI (or CLI) and the engine process.

Messages travel as one JSON object per line over a dedicated loopback socket (see
``engine.channel``). Never pickle: the engine runs native code on untrusted files, and the
UI must be able to drop a malformed line without executing anything.

Every message has ``type`` and ``id``. Commands (UI -> engine) carry a fresh request id;
events (engine -> UI) carry the id of the command they answer, so the UI can route
tokens of an old, cancelled request to nowhere.

Compatibility rule: the major part of ``PROTOCOL_VERSION`` must match exactly (checked in the
``Hello``/``Welcome`` handshake); minor bumps only add optional fields, and unknown fields are
ignored on decode so an older peer can still read a newer message.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

# 1.1: IndexPaths/Search and their events; ModelLoaded.load_note, n_gpu_layers
# 1.2: Chat.use_sources/collections/data_dir/chroma_url/sources_k, the Citations event,
#      ListSources/SourceList, Progress.bytes_done/bytes_total
# 1.3: RemoveSources/SourcesRemoved, WatchSources/WatchState, IndexPaths.exclude; the engine
#      re-indexes watched sources on its own, with Progress/IndexDone ids starting "watch-"
# 1.4: PauseIndexing/IndexingState (the indexer thread waits between files and batches);
#      ListCollections/CollectionList
# 1.5: Done.fallback (how a sourced answer was made when the model's own was markers only) and
#      Done.unsourced (addresses in the answer that no source sent to the model contains)
# 1.6: several clients per engine: a client connects to the port in the data dir's engine.json
#      and sends Hello (its token proves it may); events go to the client that sent the request;
#      ShowWindow (a second window asks the first to come to the front), WindowShown
# 1.7: Sampling.stop (strings that end a reply, beside the template's own); Embed/Embeddings (the
#      embedding model's vectors for texts: the local HTTP API's /v1/embeddings)
PROTOCOL_VERSION = "1.7"
WATCH_ID_PREFIX = "watch-"

# Largest line we accept. A chat history is big, but not this big; a longer line means a
# confused peer and we would rather drop it than buffer without bound.
MAX_LINE_BYTES = 64 * 1024 * 1024


class ProtocolError(ValueError):
    """A line that is not a valid message of this protocol version."""


# ---------------------------------------------------------------------------- errors as data

class ErrorKind:
    """Stable error kinds. The UI switches on these; the message is for the person."""

    MODEL_NOT_FOUND = "model_not_found"
    UNSUPPORTED_FORMAT = "unsupported_format"
    OUT_OF_MEMORY = "out_of_memory"
    CONTEXT_OVERFLOW = "context_overflow"
    NO_MODEL = "no_model"
    BAD_INPUT = "bad_input"
    BUSY = "busy"
    INDEX_IO = "index_io"
    INTERRUPTED = "interrupted"
    PROTOCOL = "protocol"
    INTERNAL = "internal"

    # Kinds caused by the user's environment (a file, memory, their input), as opposed to a
    # bug in Lantern. The UI words its message differently for the two.
    ENVIRONMENT = frozenset({
        MODEL_NOT_FOUND, UNSUPPORTED_FORMAT, OUT_OF_MEMORY, CONTEXT_OVERFLOW, NO_MODEL,
        BAD_INPUT, BUSY, INDEX_IO, INTERRUPTED,
    })


class EngineError(Exception):
    """An error that crosses the protocol as a ``Failed`` event."""

    def __init__(self, kind: str, message: str, *, environment: bool | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.environment = kind in ErrorKind.ENVIRONMENT if environment is None else environment


# ---------------------------------------------------------------------------- message base

_ids = itertools.count(1)


def new_request_id() -> str:
    # pid prefix keeps ids unique when a CLI and a window talk to engines at the same time
    # and their logs are read together.
    return f"{os.getpid():x}-{next(_ids)}"


_REGISTRY: dict[str, type["Message"]] = {}


@dataclass
class Message:
    TYPE: ClassVar[str] = ""
    id: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            if cls.TYPE in _REGISTRY:
                raise TypeError(f"duplicate message type {cls.TYPE!r}")
            _REGISTRY[cls.TYPE] = cls

    def to_dict(self) -> dict[str, Any]:
        # Shallow: fields are JSON values already (no nested dataclasses), and asdict's deep copy
        # cost the window 23 ms on a list of 1,500 sources.
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["type"] = self.TYPE
        return d


@dataclass
class Command(Message):
    def __post_init__(self):
        if not self.id:
            self.id = new_request_id()


@dataclass
class Event(Message):
    pass


# ---------------------------------------------------------------------------- handshake

@dataclass
class Hello(Command):
    """First line from the engine: proves it was started by us (token) and speaks our version."""
    TYPE: ClassVar[str] = "hello"
    token: str = ""
    version: str = PROTOCOL_VERSION
    pid: int = 0


@dataclass
class Welcome(Event):
    """The parent's answer to Hello. ``accepted`` false means the engine should exit."""
    TYPE: ClassVar[str] = "welcome"
    version: str = PROTOCOL_VERSION
    accepted: bool = True
    reason: str = ""


# ---------------------------------------------------------------------------- commands

MAX_STOP_STRINGS = 4


@dataclass
class Sampling:
    """Sampling settings of one request. Defaults are what most chat apps ship."""
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 1024
    seed: int = -1  # -1: a new random seed per reply
    stop: list = field(default_factory=list)   # reply ends before any of these strings (1.7)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Sampling":
        d = d or {}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        checks = [
            (0.0 <= self.temperature <= 5.0, "temperature must be between 0 and 5"),
            (0.0 < self.top_p <= 1.0, "top-p must be above 0 and at most 1"),
            (self.top_k >= 0, "top-k must be 0 (off) or more"),
            (0.0 <= self.min_p < 1.0, "min-p must be between 0 and 1"),
            (0.5 <= self.repeat_penalty <= 2.5, "repeat penalty must be between 0.5 and 2.5"),
            (1 <= self.max_tokens <= 131072, "max tokens must be between 1 and 131072"),
        ]
        for ok, msg in checks:
            if not ok:
                raise EngineError(ErrorKind.BAD_INPUT, f"Sampling setting out of range: {msg}.")
        if not isinstance(self.stop, list) or len(self.stop) > MAX_STOP_STRINGS or \
                not all(isinstance(s, str) and 0 < len(s) <= 200 for s in self.stop):
            raise EngineError(ErrorKind.BAD_INPUT, f"Sampling setting out of range: stop must be at most "
                                                   f"{MAX_STOP_STRINGS} non-empty strings of at most 200 characters.")


@dataclass
class LoadModel(Command):
    TYPE: ClassVar[str] = "load_model"
    path: str = ""           # empty: the default model
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int = 0       # 0: one per physical core


@dataclass
class Chat(Command):
    """Generate the assistant's next turn for ``messages`` (role/content dicts, oldest first)."""
    TYPE: ClassVar[str] = "chat"
    messages: list = field(default_factory=list)
    sampling: dict = field(default_factory=dict)
    # Answer from indexed sources: retrieve for the last user message, send the best chunks
    # that fit, and announce them in a Citations event before the first token.
    use_sources: bool = False
    collections: list = field(default_factory=list)   # empty: ["default"]
    data_dir: str = ""
    chroma_url: str = ""
    sources_k: int = 6


@dataclass
class Cancel(Command):
    TYPE: ClassVar[str] = "cancel"
    target: str = ""  # the request id to cancel


@dataclass
class GetStatus(Command):
    TYPE: ClassVar[str] = "get_status"


@dataclass
class Shutdown(Command):
    TYPE: ClassVar[str] = "shutdown"


@dataclass
class ShowWindow(Command):
    """Bring the window that owns this engine to the front (a second window was opened on the
    same data dir). The window gets ShowWindow as an event; the sender gets WindowShown."""
    TYPE: ClassVar[str] = "show_window"


@dataclass
class IndexPaths(Command):
    """Index files and folders into a collection; answered by Progress events and IndexDone."""
    TYPE: ClassVar[str] = "index_paths"
    paths: list = field(default_factory=list)
    collection: str = "default"
    data_dir: str = ""       # where manifest.sqlite and chroma/ live (the app's data dir)
    chroma_url: str = ""     # a Chroma server instead of the embedded store
    exclude: list = field(default_factory=list)  # files or folders under ``paths`` to leave out


@dataclass
class RemoveSources(Command):
    """Take files or folders out of a collection: their chunks, lexical rows and vectors go, and
    they are no longer watched. Answered by SourcesRemoved."""
    TYPE: ClassVar[str] = "remove_sources"
    paths: list = field(default_factory=list)
    collection: str = "default"
    data_dir: str = ""
    chroma_url: str = ""


@dataclass
class WatchSources(Command):
    """Turn watching on or off for some indexed roots (``paths``) or a whole collection (no
    paths). Indexed sources are watched by default while the engine runs. Answered by WatchState."""
    TYPE: ClassVar[str] = "watch_sources"
    enabled: bool = True
    paths: list = field(default_factory=list)
    collection: str = "default"
    data_dir: str = ""
    chroma_url: str = ""


@dataclass
class ListSources(Command):
    """What is indexed in a collection, file by file; answered by SourceList."""
    TYPE: ClassVar[str] = "list_sources"
    collection: str = "default"
    data_dir: str = ""
    chroma_url: str = ""


@dataclass
class ListCollections(Command):
    """The collections of a data dir, with their counts; answered by CollectionList."""
    TYPE: ClassVar[str] = "list_collections"
    data_dir: str = ""
    chroma_url: str = ""


@dataclass
class PauseIndexing(Command):
    """Pause (or resume) all indexing, the person's jobs and the watcher's: the indexer stops
    between two files or two embedding batches and keeps what it did. Answered at once by
    IndexingState. A cancel still ends a paused job."""
    TYPE: ClassVar[str] = "pause_indexing"
    paused: bool = True


@dataclass
class Search(Command):
    """Hybrid search; one SearchResult per query, then SearchDone. Times are ISO, epoch or words."""
    TYPE: ClassVar[str] = "search"
    queries: list = field(default_factory=list)
    k: int = 5
    collection: str = "default"
    level: str = ""
    since: str = ""
    until: str = ""
    file_glob: str = ""
    data_dir: str = ""
    chroma_url: str = ""


@dataclass
class Embed(Command):
    """The embedding model's vectors for ``texts`` (unit length); answered by Embeddings."""
    TYPE: ClassVar[str] = "embed"
    texts: list = field(default_factory=list)


# ---------------------------------------------------------------------------- events

@dataclass
class ModelLoaded(Event):
    TYPE: ClassVar[str] = "model_loaded"
    path: str = ""
    name: str = ""
    n_ctx: int = 0
    n_ctx_train: int = 0
    size_bytes: int = 0
    chat_template: str = ""   # "model" or "fallback"
    template_note: str = ""   # why the fallback was used, for the person
    load_ms: float = 0.0
    load_note: str = ""       # set when the load had to retry with less (context or GPU layers)
    n_gpu_layers: int = 0     # what the load ended up with


@dataclass
class ContextTrimmed(Event):
    """Sent before tokens when old turns had to be left out to fit the context window."""
    TYPE: ClassVar[str] = "context_trimmed"
    dropped_messages: int = 0
    prompt_tokens: int = 0
    n_ctx: int = 0


@dataclass
class Token(Event):
    TYPE: ClassVar[str] = "token"
    text: str = ""
    index: int = 0  # 0-based position in the reply; lets a receiver check order


@dataclass
class Done(Event):
    TYPE: ClassVar[str] = "done"
    text: str = ""
    finish_reason: str = "stop"  # stop | length
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    model: str = ""
    # Answers from sources only. fallback: "" (the model's own answer), "retry" (its answer stated
    # nothing from the sources - markers only, a source's place, no value of the kind asked for -
    # was not shown, and it was asked again with one record alone), "record" (that too stated
    # nothing; the text quotes that record). The text is always what the Tokens streamed.
    fallback: str = ""
    unsourced: list = field(default_factory=list)   # [{kind: "ip", value, message}], flagged values


@dataclass
class Cancelled(Event):
    TYPE: ClassVar[str] = "cancelled"
    text: str = ""  # what was generated before the cancel
    completion_tokens: int = 0


@dataclass
class Failed(Event):
    TYPE: ClassVar[str] = "failed"
    kind: str = ErrorKind.INTERNAL
    message: str = ""
    environment: bool = False

    @classmethod
    def from_error(cls, request_id: str, err: EngineError) -> "Failed":
        return cls(id=request_id, kind=err.kind, message=err.message, environment=err.environment)


@dataclass
class Status(Event):
    TYPE: ClassVar[str] = "status"
    state: str = "idle"        # idle | loading | generating
    model: str = ""
    model_path: str = ""
    pid: int = 0
    rss_bytes: int = 0


@dataclass
class Progress(Event):
    TYPE: ClassVar[str] = "progress"
    phase: str = ""          # scan | read | embed
    done: int = 0
    total: int = 0
    path: str = ""
    bytes_done: int = 0      # read phase: bytes of the files read so far
    bytes_total: int = 0


@dataclass
class IndexDone(Event):
    TYPE: ClassVar[str] = "index_done"
    summary: dict = field(default_factory=dict)  # files, chunks, skipped [{path, reason}], seconds ...


@dataclass
class SearchResult(Event):
    TYPE: ClassVar[str] = "search_result"
    query: str = ""
    hits: list = field(default_factory=list)  # [{path, line_start, line_end, page, score, text, heading}]


@dataclass
class SourceList(Event):
    TYPE: ClassVar[str] = "source_list"
    collection: str = ""
    sources: list = field(default_factory=list)  # [{path, status, reason, size, chunks, indexed_at}]


@dataclass
class SourcesRemoved(Event):
    TYPE: ClassVar[str] = "sources_removed"
    collection: str = ""
    paths: list = field(default_factory=list)   # the files that left the index
    chunks_removed: int = 0


@dataclass
class WatchState(Event):
    TYPE: ClassVar[str] = "watch_state"
    collection: str = ""
    roots: list = field(default_factory=list)   # [{path, enabled}] of the collection's watched roots


@dataclass
class CollectionList(Event):
    TYPE: ClassVar[str] = "collection_list"
    collections: list = field(default_factory=list)   # [{name, files, chunks, size}], by name


@dataclass
class IndexingState(Event):
    TYPE: ClassVar[str] = "indexing_state"
    paused: bool = False


@dataclass
class Citations(Event):
    """Sent before the first Token of a Chat with use_sources: what the answer may cite."""
    TYPE: ClassVar[str] = "citations"
    # [{n, path, line_start, line_end, page, score, similarity, text, tokens, heading}], [n] as in the prompt
    citations: list = field(default_factory=list)
    dropped: int = 0             # relevant chunks left out for lack of context room
    dropped_chunks: list = field(default_factory=list)  # [{path, line_start, line_end, score, tokens}]
    found: int = 0               # hits the retriever returned, before the relevance check
    budget: dict = field(default_factory=dict)  # prompt token breakdown (context.fit_with_sources)


@dataclass
class WindowShown(Event):
    TYPE: ClassVar[str] = "window_shown"
    shown: bool = False      # false: no window owns this engine (a CLI's or lantern serve's)


@dataclass
class SearchDone(Event):
    TYPE: ClassVar[str] = "search_done"
    queries: int = 0
    seconds: float = 0.0


@dataclass
class Embeddings(Event):
    TYPE: ClassVar[str] = "embeddings"
    vectors: list = field(default_factory=list)   # one list of floats per text, in the texts' order
    model: str = ""
    tokens: int = 0                               # tokens the embedding model read, all texts together


# The events that end a request: after one of these, no other event carries the request's id.
# (Cancel and Shutdown have no answer.) The engine's connection routing and the CLI read this.
FINAL_EVENTS: tuple[type[Event], ...] = (
    Done, Cancelled, Failed, ModelLoaded, IndexDone, SearchDone, SourceList, SourcesRemoved, WatchState,
    CollectionList, IndexingState, Status, WindowShown, Embeddings,
)
UNANSWERED_COMMANDS: tuple[type[Command], ...] = (Cancel, Shutdown)


def ends_request(msg: Message) -> bool:
    return isinstance(msg, FINAL_EVENTS)


# ---------------------------------------------------------------------------- codec

def encode(msg: Message) -> bytes:
    return (json.dumps(msg.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def decode(line: bytes | str) -> Message:
    """Parse one line into a message; raise ProtocolError for anything else."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError(f"line of {len(line)} bytes exceeds the limit")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"not UTF-8: {e}") from None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    mtype = data.pop("type", None)
    cls = _REGISTRY.get(mtype) if isinstance(mtype, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {mtype!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in known}
    try:
        msg = cls(**kwargs)
    except TypeError as e:
        raise ProtocolError(f"bad fields for {mtype}: {e}") from None
    for name, f in known.items():
        # A wrong JSON type (a string where a number belongs) is rejected here rather than
        # exploding later deep inside the service.
        value = getattr(msg, name)
        expected = _FIELD_TYPES.get(str(f.type))
        if expected and not isinstance(value, expected):
            raise ProtocolError(f"field {name!r} of {mtype} must be {f.type}, got {type(value).__name__}")
    return msg


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def versions_compatible(a: str, b: str) -> bool:
    return a.split(".")[0] == b.split(".")[0]


def answer_hello(msg: Message, token: str) -> Welcome:
    """The parent's check of an engine's first line: right type, right token, same major version."""
    import hmac

    if not isinstance(msg, Hello):
        return Welcome(accepted=False, reason=f"expected hello, got {msg.TYPE}")
    if not hmac.compare_digest(msg.token.encode(), token.encode()):
        return Welcome(id=msg.id, accepted=False, reason="wrong token")
    if not versions_compatible(msg.version, PROTOCOL_VERSION):
        return Welcome(id=msg.id, accepted=False,
                       reason=f"protocol version {msg.version} does not match {PROTOCOL_VERSION}")
    return Welcome(id=msg.id)
