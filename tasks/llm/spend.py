"""What a run spends: a ledger kept in the output dir, and a budget checked before every call is sent.

The budget lives here, in the one door every call goes through, and not in the stages:

- **Before a call is sent** it reserves its worst case: its prompt tokens bounded from above
  (`token_bound`: a token per UTF-8 byte of non-ASCII text, as byte-level BPE can make at most; one
  per digit; half a token per other ASCII character, which no whitespace-split word count and no
  subword tokenizer on English or LaTeX exceeds; plus 4 per message) and its `max_tokens`, at the
  model's price. When spent + this call could pass `max_budget_usd` (or `max_tokens_total`), the
  call is refused with `BudgetReached`. When only the calls in flight stand in the way (spent +
  their worst cases + this one), it waits for them to settle: they mostly cost less than their worst
  case, so a run uses its budget instead of stopping at a fraction of it (with 16 calls in flight
  over two Dask workers it stopped at 37% of its cap). It is refused if they do not settle within
  `IN_FLIGHT_WAIT_S` (a killed worker's reservation stays until the next run clears it). Counting
  the calls in flight at their worst case is what keeps concurrent calls from passing the cap
  together: with true bounds the spend never passes it.
- **When the reply comes** its real cost replaces the reservation and is written to the ledger
  (SQLite in WAL mode beside the row store, `<output_dir>/.prefect-results/spend.sqlite`, one
  transaction per call). The budget is the output dir's: it holds across Prefect retries, the
  solve/translate/rephrase stages, separate flow runs (a re-run, the estimate's pilot) and
  processes (Dask workers open the same file), which all add to and read the same total. The
  reservations are rows of the same file, taken in one write transaction with the check, so the
  processes of a run count each other's calls in flight; a run starts by dropping the reservations
  a killed process left behind (`spend_control`).
- `BudgetReached` is not an `LLMCallError`, so no stage turns it into a failed row: it leaves the
  stage function, the stage runtime (tasks/runtime/stage_map.py) stores nothing for that row and
  starts no new row (`SpendLedger.stopped`); rows in flight finish, each of their calls checked on
  its own. A re-run with a higher budget does the stopped rows; the replies those rows had already
  paid for are kept (`spend_item`, `SpendLedger.keep_replies`) and handed back instead of being
  sent again, so resuming repeats no call.

The budget is not part of any cache key (`SpendSettings` is not in `LLMSettings`): raising it
must not redo what is paid for. Calls outside any `spend_control` (scripts, unit tests, the CLI's
preflight request) are neither checked nor recorded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import litellm

from tasks.llm.records import IN_PROCESS_PROVIDERS, LLMReply, LLMSettings, ModelPrice, SpendSettings

LEDGER_NAME = "spend.sqlite"
IN_FLIGHT_WAIT_S = 300.0  # how long a call waits for the calls in flight to settle when only they stand in its way
_IN_FLIGHT_POLL_S = 0.05  # they may settle in another process: the ledger file is polled
_MESSAGE_OVERHEAD_TOKENS = 4  # role and separators: OpenAI's own count adds 3-4 per message


class BudgetReached(RuntimeError):
    """The next call could pass the run's budget: the row stops unstored and no new row starts.

    Deliberately not an `LLMCallError`: a stage turns those into failed rows, which would be stored
    and never redone.
    """


@dataclass(frozen=True)
class TokenPrices:
    """Dollars per token, online and through a batch API (batch = online where the price map has no batch price)."""

    input: float = 0.0
    output: float = 0.0
    batch_input: float = 0.0
    batch_output: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float:
        if batch:
            return prompt_tokens * self.batch_input + completion_tokens * self.batch_output
        return prompt_tokens * self.input + completion_tokens * self.output


@functools.lru_cache(maxsize=64)
def token_prices(model: str) -> TokenPrices:
    """litellm's prices for `model` ($ per token); zero for in-process models and models it has no price for."""
    if model.split("/", 1)[0] in IN_PROCESS_PROVIDERS:
        return TokenPrices()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a bare Exception for a model it has no entry for
        return TokenPrices()
    online_in, online_out = info.get("input_cost_per_token") or 0.0, info.get("output_cost_per_token") or 0.0
    return TokenPrices(online_in, online_out, info.get("input_cost_per_token_batches") or online_in,
                       info.get("output_cost_per_token_batches") or online_out)


_registered_here: set[tuple[str, str]] = set()  # (model, price as JSON) this process told litellm


def register_price(model: str, price: ModelPrice) -> None:
    """Tell litellm what `model` costs (`--price`): its replies are then priced, and budgets can hold for it."""
    try:
        provider = litellm.get_llm_provider(model)[1]
    except Exception:  # a model string litellm cannot place: the first call will say so
        provider = model.split("/", 1)[0]
    entry: dict[str, Any] = {"input_cost_per_token": price.input_per_mtok / 1e6,
                             "output_cost_per_token": price.output_per_mtok / 1e6,
                             "litellm_provider": provider, "mode": "chat"}
    if price.batch_input_per_mtok is not None and price.batch_output_per_mtok is not None:
        entry |= {"input_cost_per_token_batches": price.batch_input_per_mtok / 1e6,
                  "output_cost_per_token_batches": price.batch_output_per_mtok / 1e6}
    litellm.register_model({model: entry})
    token_prices.cache_clear()
    _registered_here.add((model, price.model_dump_json()))


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # typed parts: their text
        parts = [part.get("text") or "" for part in content if isinstance(part, dict)]
    else:
        parts = [content or ""]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts += [function.get("name") or "", function.get("arguments") or ""]
    return "".join(parts)


_NO_DIGITS = str.maketrans("", "", "0123456789")


def token_bound(text: str) -> int:
    """More tokens than any tokenizer makes of `text`: a byte-level BPE makes at most one token per UTF-8 byte,
    so non-ASCII text (CJK, symbols) counts its bytes; Llama and Qwen tokenizers split numbers into single
    digits, so digits count one each; the rest of ASCII (English, LaTeX, code) counts half a token a character,
    which word and subword tokenizers stay under (3.5-4.5 characters a token)."""
    encoded = text.encode()
    ascii_text = encoded.decode("ascii", errors="ignore")
    digits = len(ascii_text) - len(ascii_text.translate(_NO_DIGITS))
    return (len(encoded) - len(ascii_text)) + digits + (len(ascii_text) - digits + 1) // 2


@dataclass(frozen=True)
class Cost:
    usd: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class Reservation:
    """A call's worst case, held in the ledger file (row `row_id`) until its reply settles it or it fails."""

    cost: Cost
    row_id: int


def worst_case(settings: LLMSettings, request: dict[str, Any], *, batch: bool = False) -> Cost:
    """An upper bound on what `request` (the kwargs `complete` sends) can cost: prompt bound + `max_tokens`."""
    prompt = sum(token_bound(_text(m)) + _MESSAGE_OVERHEAD_TOKENS for m in request["messages"])
    if request.get("tools"):
        prompt += token_bound(json.dumps(request["tools"]))
    completion = int(request.get("max_tokens") or settings.max_tokens)
    return Cost(token_prices(settings.model).cost(prompt, completion, batch=batch), prompt + completion)


def request_key(settings: LLMSettings, request: dict[str, Any]) -> str:
    """What a model sees of a call: equal keys, the same request (also a batch line's custom id)."""
    text = json.dumps({"model": settings.model, "api_base": settings.api_base, **request}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LedgerSpec:
    """A ledger's file and caps without its connection: what travels to a chunk in another process, with the
    prices the run registered (`--price`), which that process's litellm does not know."""

    path: str
    max_usd: float | None = None
    max_tokens: int | None = None
    prices: tuple[tuple[str, ModelPrice], ...] = ()


@dataclass(frozen=True)
class StageSpend:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    batch_calls: int
    batch_saved_usd: float
    mean_latency_s: float | None


@dataclass(frozen=True)
class SpendTotals:
    """What the output dir's calls cost, by stage (the stage runtime names each call's stage; "" outside one)."""

    usd: float
    tokens: int
    by_stage: dict[str, StageSpend] = field(default_factory=dict)

    @property
    def batch_saved_usd(self) -> float:
        return sum(s.batch_saved_usd for s in self.by_stage.values())


_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, at REAL, stage TEXT, model TEXT, prompt_tokens INTEGER,
    completion_tokens INTEGER, cost_usd REAL, online_cost_usd REAL, latency_s REAL, batch INTEGER);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), usd REAL NOT NULL, tokens INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0.0, 0);
CREATE TABLE IF NOT EXISTS kept_replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (id INTEGER PRIMARY KEY, usd REAL NOT NULL, tokens INTEGER NOT NULL);
"""


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection shared by this process's threads (callers hold a lock), WAL so processes share the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=60.0, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process, not a power cut
    return db


class SpendLedger:
    """The spend of one output dir and the worst cases of the calls in flight, both in its SQLite file: the
    processes of one run (Dask workers open the same file) check the cap against each other's calls too."""

    def __init__(self, path: Path, max_usd: float | None = None, max_tokens: int | None = None,
                 prices: tuple[tuple[str, ModelPrice], ...] = (), in_flight_wait_s: float = IN_FLIGHT_WAIT_S) -> None:
        self.spec = LedgerSpec(str(path), max_usd, max_tokens, prices)
        self.in_flight_wait_s = in_flight_wait_s
        self._db = open_sqlite(Path(path))
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.stopped = False  # a call was refused: start no new row
        self._kept = {key for (key,) in self._db.execute("SELECT key FROM kept_replies")}

    @property
    def capped(self) -> bool:
        return self.spec.max_usd is not None or self.spec.max_tokens is not None

    def spent(self) -> Cost:
        """Everything recorded in this output dir, by any process."""
        with self._lock:
            return self._spent()

    def _spent(self) -> Cost:
        usd, tokens = self._db.execute("SELECT usd, tokens FROM totals").fetchone()
        return Cost(usd, tokens)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction with the file locked from its start (BEGIN IMMEDIATE), so what it reads cannot go
        stale before it writes, whichever process writes meanwhile. Callers hold `_lock`: threads share the
        connection."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield

    def reserve(self, worst: Cost) -> Reservation:
        """Hold `worst` for a call about to be sent; wait while only the calls in flight keep it from fitting;
        raise `BudgetReached` if it could pass a cap even without them, or they do not settle in time.

        Each try is one write transaction: what every process spent and holds in flight is read and this
        call's worst case added at once, so two processes cannot both take the last of the budget."""
        held_before, unchanged_since = None, time.monotonic()
        while True:
            with self._lock, self._write():
                spent = self._spent()
                held = Cost(*self._db.execute("SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(tokens), 0) "
                                              "FROM reservations").fetchone())
                if self._would_pass(spent, worst):
                    self.stopped = True
                    raise BudgetReached(self._reached(worst, spent, held))
                if not self._would_pass(Cost(spent.usd + held.usd, spent.tokens + held.tokens), worst):
                    row = self._db.execute("INSERT INTO reservations (usd, tokens) VALUES (?, ?)",
                                           (worst.usd, worst.tokens))
                    return Reservation(worst, row.lastrowid)
            if held != held_before:  # calls in flight settled or started: the wait goes on
                held_before, unchanged_since = held, time.monotonic()
            elif time.monotonic() - unchanged_since > self.in_flight_wait_s:
                self.stopped = True
                raise BudgetReached(f"{self._reached(worst, spent, held)}; the calls in flight did not settle "
                                    f"within {self.in_flight_wait_s:g} s")
            time.sleep(_IN_FLIGHT_POLL_S)

    def _would_pass(self, base: Cost, worst: Cost) -> bool:
        return (self.spec.max_usd is not None and base.usd + worst.usd > self.spec.max_usd) or (
            self.spec.max_tokens is not None and base.tokens + worst.tokens > self.spec.max_tokens)

    def _reached(self, worst: Cost, spent: Cost, held: Cost) -> str:
        return (f"budget reached: the next call could cost up to ${worst.usd:.6f} ({worst.tokens} tokens), with "
                f"${spent.usd:.6f} ({spent.tokens} tokens) spent and ${held.usd:.6f} in flight; caps "
                f"${self.spec.max_usd} / {self.spec.max_tokens} tokens")

    def release(self, reservation: Reservation | None) -> None:
        """The call failed: what it held is free again (a failed call is not billed)."""
        if reservation is not None:
            with self._lock, self._write():
                self._db.execute("DELETE FROM reservations WHERE id = ?", (reservation.row_id,))

    def clear_reservations(self) -> None:
        """A run starts with nothing in flight: drop what a killed process of an earlier run still held."""
        with self._lock, self._write():
            self._db.execute("DELETE FROM reservations")

    def settle(self, reservation: Reservation | None, reply: LLMReply, *, stage: str, batch: bool,
               online_cost_usd: float) -> None:
        """The reply's real cost replaces its reservation, in the ledger file before the caller sees the reply."""
        tokens = reply.prompt_tokens + reply.completion_tokens
        with self._lock, self._write():  # one transaction: the call, the total and the reservation it replaces
            if reservation is not None:
                self._db.execute("DELETE FROM reservations WHERE id = ?", (reservation.row_id,))
            self._db.execute("INSERT INTO calls (at, stage, model, prompt_tokens, completion_tokens, cost_usd, "
                             "online_cost_usd, latency_s, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (time.time(), stage, reply.model, reply.prompt_tokens, reply.completion_tokens,
                              reply.cost_usd, online_cost_usd, reply.latency_s, int(batch)))
            self._db.execute("UPDATE totals SET usd = usd + ?, tokens = tokens + ? WHERE id = 0",
                             (reply.cost_usd, tokens))

    def keep_replies(self, replies: list[tuple[str, LLMReply]]) -> None:
        """Keep the replies of a row the budget stopped, so its re-run is handed them instead of paying again."""
        with self._lock, self._write():
            self._db.executemany("INSERT OR REPLACE INTO kept_replies VALUES (?, ?)",
                                 [(key, reply.model_dump_json()) for key, reply in replies])
            self._kept.update(key for key, _ in replies)

    def kept_reply(self, key: str) -> LLMReply | None:
        """A reply paid for by a row the budget stopped earlier, handed out once."""
        with self._lock:
            if key not in self._kept:
                return None
            self._kept.discard(key)
            with self._write():
                row = self._db.execute("SELECT reply FROM kept_replies WHERE key = ?", (key,)).fetchone()
                self._db.execute("DELETE FROM kept_replies WHERE key = ?", (key,))
        return None if row is None else LLMReply.model_validate_json(row[0])

    @property
    def has_kept_replies(self) -> bool:
        return bool(self._kept)

    def totals(self) -> SpendTotals:
        with self._lock:
            return self._totals()

    def _totals(self) -> SpendTotals:
        rows = self._db.execute(
            "SELECT stage, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(batch), "
            "SUM(CASE WHEN batch THEN online_cost_usd - cost_usd ELSE 0 END), "
            "AVG(CASE WHEN batch THEN NULL ELSE latency_s END) FROM calls GROUP BY stage").fetchall()
        spent = self._spent()
        return SpendTotals(spent.usd, spent.tokens, {
            stage or "": StageSpend(calls, prompt or 0, completion or 0, usd or 0.0, batch or 0, saved or 0.0, latency)
            for stage, calls, prompt, completion, usd, batch, saved, latency in rows})

    def close(self) -> None:
        self._db.close()


# ---- the ledger of the calls made in this context, and the row they belong to ---------------------------------------

_ledger: ContextVar[SpendLedger | None] = ContextVar("llm_spend_ledger", default=None)


@dataclass
class _Row:
    """The row (stage item) a call is made for: its stage's name, and the replies it has had so far."""

    stage: str
    replies: list[tuple[LLMSettings, dict[str, Any], LLMReply]] = field(default_factory=list)


_row: ContextVar[_Row | None] = ContextVar("llm_spend_row", default=None)


def active_ledger() -> SpendLedger | None:
    return _ledger.get()


def current_stage() -> str:
    row = _row.get()
    return row.stage if row is not None else ""


@contextlib.contextmanager
def using_ledger(ledger: SpendLedger | None) -> Iterator[None]:
    """Check and record the calls made inside this block with `ledger` (a chunk in another process opens its own)."""
    token = _ledger.set(ledger)
    try:
        yield
    finally:
        _ledger.reset(token)


def open_ledger(spec: LedgerSpec) -> SpendLedger:
    """The run's ledger in another process (a Dask worker): its prices registered here too, so calls are priced."""
    for model, price in spec.prices:
        if (model, price.model_dump_json()) not in _registered_here:  # once per process, not per chunk
            register_price(model, price)
    return SpendLedger(Path(spec.path), spec.max_usd, spec.max_tokens, spec.prices)


def ledger_totals(ledger_dir: Path) -> SpendTotals:
    """What the calls recorded in `ledger_dir` (an output dir's cache dir) cost, by stage."""
    with contextlib.closing(SpendLedger(Path(ledger_dir) / LEDGER_NAME)) as ledger:
        return ledger.totals()


@contextlib.contextmanager
def spend_control(settings: SpendSettings, llm: LLMSettings, ledger_dir: Path) -> Iterator[SpendLedger]:
    """Record every call made inside this block in `ledger_dir`'s ledger and hold the budget; set it per run, as
    `call_limits` sets the gates (Prefect's thread task runner copies the context into its workers)."""
    price = settings.model_price()
    if price is not None:
        register_price(llm.model, price)
    ledger = SpendLedger(Path(ledger_dir) / LEDGER_NAME, settings.max_budget_usd, settings.max_tokens_total,
                         ((llm.model, price),) if price is not None else ())
    ledger.clear_reservations()
    try:
        with using_ledger(ledger):
            yield ledger
    finally:
        ledger.close()


@contextlib.contextmanager
def spend_item(stage: str) -> Iterator[None]:
    """Run one stage row: its calls are recorded under `stage`, and if the budget stops it, the replies it had are
    kept for its re-run (`BudgetReached` goes on to the caller, which must not store the row)."""
    row = _Row(stage)
    token = _row.set(row)
    try:
        yield
    except BudgetReached:
        ledger = _ledger.get()
        if ledger is not None and row.replies:
            ledger.keep_replies([(request_key(settings, request), reply) for settings, request, reply in row.replies])
        raise
    finally:
        _row.reset(token)


def note_reply(settings: LLMSettings, request: dict[str, Any], reply: LLMReply) -> None:
    """Remember a reply for the row it was made for (cheap: the request is only hashed if the row is stopped)."""
    row = _row.get()
    if row is not None and _ledger.get() is not None:
        row.replies.append((settings, {**request, "messages": list(request["messages"])}, reply))
