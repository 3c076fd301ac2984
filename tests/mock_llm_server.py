"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for fault tests and benchmarks.

It speaks `POST /v1/chat/completions` (what litellm's `openai/` and `hosted_vllm/` providers call)
and answers with `tasks.llm.scripted_provider.scripted_reply`, the same deterministic arithmetic
"model" the in-process `scripted/` provider uses (the request's `seed` picks the solver's sample), so
a flow pointed at it produces the same rows.
On top of that it can:

- answer each request its latency after it arrived (a slow remote model, without using CPU): the
  server's own work (parsing, counting, writing the answer) happens inside that wait, not on top of
  it, so a client sees the latency it was told plus the network. Fixed, or spread evenly over
  `latency_s * (1 ± latency_jitter)` by a hash of the request's messages, so the same request waits the
  same time whichever client sends it and the mean stays `latency_s` (real endpoints vary with the
  length of what they write; a client that waits for a whole batch pays for its slowest request);
- inject faults, each a `FaultRule` consumed by the first matching requests:
  `rate_limit` (429 + Retry-After), `server_error` (500), `unavailable` (503), `reset` (TCP RST,
  no reply), `slow` (answers after `slow_s`, past a client's timeout), `malformed` (200 with a
  truncated JSON body), `empty` (200, empty content), `content_filter` (200, finish_reason
  "content_filter", no content), `policy_violation` (400, code "content_policy_violation"),
  `bad_key` (401 that echoes the caller's API key, as some proxies do: tests that it is scrubbed);
- count what it saw (`stats()`, or `GET /stats` in script mode): requests per agent (told apart by
  the system prompt of the project's prompt files), faults served, identical requests, the peak
  number in flight, and the time from the first request to the last reply;
- call a hook on every request before answering it (tests use it to kill -9 a flow mid-stage);
- serve OpenAI's batch API, as litellm's `openai/` and `hosted_vllm/` batch calls use it
  (`POST /v1/files` multipart upload, `GET /v1/files/{id}` and `/content`, `POST /v1/batches`,
  `GET /v1/batches/{id}`): a batch is "in_progress" for `batch_delay_s`, then its lines are answered
  by the same scripted model (each line counted like a request, billed lines by request key:
  `batch_lines_billed`), a `FaultRule` that matches a line fails that line (its error in the error
  file), and the next `expire_batches` batches expire with only their first half done, as OpenAI's
  do when the completion window runs out. Batch lines carry the same usage as online replies: the
  batch discount is a price the client registers (litellm's `input_cost_per_token_batches`);
  `on_batch(event, batch_id, stats)` is called when a batch is "created" and each time it is
  "retrieved" (tests kill -9 a flow while it waits on one). `GET /v1/batches` lists them.

It is bounded so a broken test cannot leave it behind: at most `max_requests` completions (then
400s), a 4 MiB body limit, and it shuts itself down after `idle_exit_s` without requests.

    .venv/bin/python tests/mock_llm_server.py --latency 0.2 --fault rate_limit:3
    # prints "listening on http://127.0.0.1:PORT/v1" and serves until idle
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tasks.prompt_store import PROMPT_DIR, available_versions, load_prompt
from tasks.llm.scripted_provider import scripted_reply

FaultKind = Literal["rate_limit", "server_error", "unavailable", "reset", "slow", "malformed", "empty",
                    "content_filter", "policy_violation", "bad_key"]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
MAX_BODY_BYTES = 4 * 2**20
MAX_FILE_BYTES = 64 * 2**20  # a batch input file of thousands of requests


@dataclass
class FaultRule:
    """Serve `kind` instead of an answer to the next `times` requests of `agent` whose messages contain `match`."""

    kind: FaultKind
    times: int = 1
    agent: str | None = None
    match: str | None = None

    def applies(self, agent: str, messages_json: str) -> bool:
        return (self.times > 0 and self.agent in (None, agent)
                and (self.match is None or self.match in messages_json))

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """`KIND[:TIMES[:AGENT[:MATCH]]]`, e.g. `rate_limit:3`, `empty:1:translator` or `reset:1::12 * 7`."""
        kind, times, agent, match = (spec.split(":", 3) + ["", "", ""])[:4]
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault {spec!r}: unknown kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        return cls(kind=kind, times=int(times or 1), agent=agent or None, match=match or None)  # type: ignore[arg-type]


@dataclass
class ServerStats:
    requests: int = 0
    answered: int = 0
    by_agent: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    request_keys: Counter[str] = field(default_factory=Counter)
    api_keys_seen: set[str] = field(default_factory=set)
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (agent, last message's text) per request
    in_flight: int = 0
    peak_in_flight: int = 0
    request_seconds: float = 0.0  # summed over requests, arrival to reply: / busy_s = mean in flight
    cpu_at_reset: float = field(default_factory=time.process_time)
    first_request_at: float | None = None
    last_reply_at: float | None = None
    batch_ids: list[str] = field(default_factory=list)  # every batch created, in order
    batch_lines: int = 0  # lines executed (billed or failed)
    batch_lines_billed: Counter[str] = field(default_factory=Counter)  # request key -> times answered in a batch
    batch_retrievals: Counter[str] = field(default_factory=Counter)  # batch id -> GET /v1/batches/{id}

    @property
    def repeated_requests(self) -> int:
        """Requests identical (messages, tools, sampling) to an earlier one."""
        return sum(n - 1 for n in self.request_keys.values())

    @property
    def busy_s(self) -> float:
        """Seconds from the first request to the last reply: the LLM phase of a run, without its start-up."""
        if self.first_request_at is None or self.last_reply_at is None:
            return 0.0
        return self.last_reply_at - self.first_request_at

    @property
    def requests_digest(self) -> str:
        """One hash of every request seen, with repeats, in any order: equal digests mean the very same workload."""
        return hashlib.sha256(" ".join(sorted(self.request_keys.elements())).encode()).hexdigest()[:16]

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "answered": self.answered, "by_agent": dict(self.by_agent),
                "faults": dict(self.faults), "repeated_requests": self.repeated_requests,
                "requests_digest": self.requests_digest,
                "peak_in_flight": self.peak_in_flight, "busy_s": round(self.busy_s, 4),
                "batches": len(self.batch_ids), "batch_lines": self.batch_lines,
                "batch_lines_billed": sum(self.batch_lines_billed.values()),
                "batch_lines_billed_twice": sum(n > 1 for n in self.batch_lines_billed.values()),
                "mean_in_flight": round(self.request_seconds / self.busy_s, 2) if self.busy_s else 0.0,
                "server_cpu_s": round(time.process_time() - self.cpu_at_reset, 3)}


@lru_cache(maxsize=1)
def _agent_system_prompts() -> dict[str, str]:
    """System prompt text -> agent name, over every prompt version shipped with the project."""
    prompts: dict[str, str] = {}
    for agent_dir in sorted(p for p in PROMPT_DIR.iterdir() if p.is_dir()):
        for version in available_versions(agent_dir.name):
            parts = load_prompt(agent_dir.name, version).parts
            for name, text in parts.items():
                if name.startswith("system") and isinstance(text, str):
                    prompts[text.strip()] = agent_dir.name
    return prompts


def agent_of(messages: list[dict[str, Any]]) -> str:
    """Which agent sent a conversation (solver, translator, rephraser, judge), by its system prompt."""
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    if not isinstance(system, str):
        return "unknown"
    return _agent_system_prompts().get(system.strip(), "unknown")


def request_key(body: dict[str, Any]) -> str:
    """Identity of a request: what a model would see. Equal keys mean a repeated call.

    The seed counts only when the request samples (temperature > 0): at temperature 0 it changes nothing
    a model answers, and clients differ in whether they send one."""
    seen = {k: body.get(k) for k in ("model", "messages", "tools", "temperature", "stop", "max_tokens")}
    if (body.get("temperature") or 0) > 0:
        seen["seed"] = body.get("seed")
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


def _text_of(content: Any) -> str:
    """OpenAI content may be a string or a list of typed parts; the scripted model reads text."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    """A word count of the request's messages: the mock's stand-in for a tokenizer."""
    return sum(len(_text_of(m.get("content")).split()) for m in body.get("messages") or [])


def completion_body(model: str, content: str | None, tool_calls: list[dict[str, Any]], finish_reason: str,
                    prompt_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}} for c in tool_calls]
    completion_tokens = len((content or "").split()) + sum(len(c["arguments"].split()) for c in tool_calls)
    return {
        "id": f"chatcmpl-mock-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class MockLLMServer:
    """The server; `with MockLLMServer(latency_s=0.2) as server: ... server.url ...`."""

    def __init__(self, *, latency_s: float = 0.0, latency_jitter: float = 0.0, faults: list[FaultRule] | None = None,
                 retry_after_s: int = 1, slow_s: float = 5.0, max_requests: int = 10_000, idle_exit_s: float = 300.0, port: int = 0,
                 on_request: Callable[[str, ServerStats], None] | None = None, batch_delay_s: float = 0.5,
                 expire_batches: int = 0, on_batch: Callable[[str, str, ServerStats], None] | None = None) -> None:
        if not 0.0 <= latency_jitter <= 1.0:
            raise ValueError(f"latency_jitter must be within [0, 1] (a fraction of latency_s), got {latency_jitter}")
        self.latency_s, self.latency_jitter, self.retry_after_s, self.slow_s = latency_s, latency_jitter, retry_after_s, slow_s
        self.max_requests, self.idle_exit_s = max_requests, idle_exit_s
        self.on_request, self.on_batch = on_request, on_batch
        self.batch_delay_s, self.expire_batches = batch_delay_s, expire_batches
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}  # id -> (file object, content)
        self._batches: dict[str, dict[str, Any]] = {}  # id -> batch object
        self._faults = list(faults or [])
        self._stats = ServerStats()
        self._lock = threading.Lock()
        self._last_activity = time.monotonic()
        self._stopped = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.mock = self

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The OpenAI base URL (`api_base`), e.g. http://127.0.0.1:41234/v1."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> MockLLMServer:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="mock-llm-server").start()
        threading.Thread(target=self._exit_when_idle, daemon=True, name="mock-llm-idle-exit").start()
        return self

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self._httpd.shutdown()
            self._httpd.server_close()

    def wait_stopped(self) -> None:
        self._stopped.wait()

    def __enter__(self) -> MockLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _exit_when_idle(self) -> None:
        while not self._stopped.wait(0.5):
            if time.monotonic() - self._last_activity > self.idle_exit_s:
                self.stop()

    def latency_for(self, messages: Any) -> float:
        """Seconds to wait before answering these messages: `latency_s`, spread by `latency_jitter`."""
        if not self.latency_jitter:
            return self.latency_s
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
        spread = int.from_bytes(digest[:8], "big") / 2**64 * 2 - 1  # even over [-1, 1)
        return self.latency_s * (1 + self.latency_jitter * spread)

    # -- state -------------------------------------------------------------------------------------
    def stats(self) -> ServerStats:
        """A snapshot of the counters."""
        with self._lock:
            s = self._stats
            return replace(s, by_agent=Counter(s.by_agent), faults=Counter(s.faults), request_keys=Counter(s.request_keys),
                           api_keys_seen=set(s.api_keys_seen), transcript=list(s.transcript))

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = ServerStats()

    def add_faults(self, *rules: FaultRule) -> None:
        with self._lock:
            self._faults.extend(rules)

    def _admit(self, body: dict[str, Any], api_key: str | None) -> tuple[str, FaultKind | None, bool]:
        """Count a request and pick its fault. Returns (agent, fault, over_budget)."""
        agent = agent_of(body.get("messages") or [])
        haystack = json.dumps(body.get("messages"))
        with self._lock:
            s = self._stats
            self._last_activity = time.monotonic()
            if s.requests >= self.max_requests:
                return agent, None, True
            s.requests += 1
            s.by_agent[agent] += 1
            s.transcript.append((agent, _text_of(((body.get("messages") or [{}])[-1]).get("content"))))
            s.request_keys[request_key(body)] += 1
            if api_key:
                s.api_keys_seen.add(api_key)
            s.in_flight += 1
            s.peak_in_flight = max(s.peak_in_flight, s.in_flight)
            if s.first_request_at is None:
                s.first_request_at = time.perf_counter()
            fault = None
            for rule in self._faults:
                if rule.applies(agent, haystack):
                    rule.times -= 1
                    fault = rule.kind
                    s.faults[fault] += 1
                    break
            snapshot = s
        if self.on_request is not None:
            self.on_request(agent, snapshot)
        return agent, fault, False

    # -- the batch API ---------------------------------------------------------------------------------------------
    def add_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self._lock:
            file = {"id": f"file-mock-{len(self._files) + 1}-{time.monotonic_ns() % 10**8}", "object": "file",
                    "bytes": len(content), "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                    "status": "processed"}
            self._files[file["id"]] = (file, content)
            self._last_activity = time.monotonic()
            return file

    def file(self, file_id: str) -> tuple[dict[str, Any], bytes] | None:
        with self._lock:
            return self._files.get(file_id)

    def create_batch(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """A new batch over an uploaded file; None when the file is unknown."""
        with self._lock:
            if request.get("input_file_id") not in self._files:
                return None
            now = int(time.time())
            batch = {"id": f"batch_mock_{len(self._batches) + 1}_{time.monotonic_ns() % 10**8}", "object": "batch",
                     "endpoint": request.get("endpoint", "/v1/chat/completions"), "errors": None,
                     "input_file_id": request["input_file_id"], "completion_window": request.get("completion_window", "24h"),
                     "status": "in_progress", "output_file_id": None, "error_file_id": None, "created_at": now,
                     "in_progress_at": now, "expires_at": now + 86400, "finalizing_at": None, "completed_at": None,
                     "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                     "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": request.get("metadata"),
                     "_due": time.monotonic() + self.batch_delay_s, "_expire": self.expire_batches > 0}
            self.expire_batches -= batch["_expire"]
            self._batches[batch["id"]] = batch
            self._stats.batch_ids.append(batch["id"])
            self._last_activity = time.monotonic()
            snapshot = self._stats
        if self.on_batch is not None:
            self.on_batch("created", batch["id"], snapshot)
        return _public(batch)

    def list_batches(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_public(b) for b in reversed(self._batches.values())]

    def retrieve_batch(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as a client sees it now: its lines are run once its delay has passed."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            self._stats.batch_retrievals[batch_id] += 1
            self._last_activity = time.monotonic()
            if batch["status"] == "in_progress" and time.monotonic() >= batch["_due"]:
                self._run_batch(batch)
            public, snapshot = _public(batch), self._stats
        if self.on_batch is not None:
            self.on_batch("retrieved", batch_id, snapshot)
        return public

    def _run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every line (holding the lock): an expiring batch answers its first half only."""
        lines = [json.loads(line) for line in self._files[batch["input_file_id"]][1].decode().splitlines() if line.strip()]
        done_until = len(lines) // 2 if batch["_expire"] else len(lines)
        outputs, errors = [], []
        for number, line in enumerate(lines):
            body = line.get("body") or {}
            if number >= done_until:
                errors.append({"id": f"batch_req_{number}", "custom_id": line.get("custom_id"), "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                         "before the completion window expired."}})
                continue
            self._stats.batch_lines += 1
            agent = agent_of(body.get("messages") or [])
            haystack = json.dumps(body.get("messages"))
            fault = next((rule for rule in self._faults if rule.applies(agent, haystack)), None)
            if fault is not None:
                fault.times -= 1
                self._stats.faults[fault.kind] += 1
                errors.append({"id": f"batch_req_{number}", "custom_id": line.get("custom_id"),
                               "response": {"status_code": 500, "request_id": f"req_{number}",
                                            "body": {"error": {"message": f"mock fault {fault.kind}", "type": "server_error"}}},
                               "error": None})
                continue
            key = request_key(body)
            self._stats.by_agent[agent] += 1
            self._stats.request_keys[key] += 1
            self._stats.batch_lines_billed[key] += 1
            self._stats.transcript.append((agent, _text_of(((body.get("messages") or [{}])[-1]).get("content"))))
            answer = json.loads(_Handler._scripted_answer(body))
            outputs.append({"id": f"batch_req_{number}", "custom_id": line.get("custom_id"),
                            "response": {"status_code": 200, "request_id": f"req_{number}", "body": answer}, "error": None})
        now = int(time.time())
        for name, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                content = "".join(json.dumps(row) + "\n" for row in rows).encode()
                file_id = f"file-mock-{len(self._files) + 1}-{time.monotonic_ns() % 10**8}"
                self._files[file_id] = ({"id": file_id, "object": "file", "bytes": len(content), "created_at": now,
                                         "filename": f"{batch['id']}_{name}.jsonl", "purpose": "batch_output",
                                         "status": "processed"}, content)
                batch[name] = file_id
        batch["status"] = "expired" if batch["_expire"] else "completed"
        batch["expired_at" if batch["_expire"] else "completed_at"] = now
        batch["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}

    def _done(self, answered: bool, arrived_at: float) -> None:
        with self._lock:
            self._stats.request_seconds += time.perf_counter() - arrived_at
            self._stats.in_flight -= 1
            self._stats.answered += answered
            self._stats.last_reply_at = time.perf_counter()
            self._last_activity = time.monotonic()


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections when a benchmark opens dozens at once
    mock: MockLLMServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints and the OpenAI SDK's pool expect
    # Headers and body go out in two writes; with Nagle on, the body waited for the client's delayed
    # ACK of the headers: +40-45 ms on every reply (245 ms measured for a 200 ms latency).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats, not access logs
        pass

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str, code: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

    def do_GET(self) -> None:
        mock = self.server.mock
        path = self.path.split("?", 1)[0].rstrip("/").removeprefix("/v1")
        if path == "/stats":
            self._send_json(200, mock.stats().as_json())
        elif path == "/models":
            self._send_json(200, {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "mock"}]})
        elif path.startswith("/files/"):
            file_id, _, content = path.removeprefix("/files/").partition("/")
            found = mock.file(file_id)
            if found is None:
                self._error(404, f"No such File object: {file_id}", "invalid_request_error")
            elif content == "content":
                self._send_raw(200, found[1], content_type="application/jsonl")
            else:
                self._send_json(200, found[0])
        elif path == "/batches":  # newest first, as OpenAI lists them
            data = mock.list_batches()
            self._send_json(200, {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None, "has_more": False})
        elif path.startswith("/batches/"):
            batch = mock.retrieve_batch(path.removeprefix("/batches/"))
            if batch is None:
                self._error(404, f"No batch found with id '{path.removeprefix('/batches/')}'", "invalid_request_error")
            else:
                self._send_json(200, batch)
        else:
            self._error(404, f"no route GET {self.path}", "not_found")

    def _upload(self, length: int) -> None:
        """`POST /v1/files`: a multipart form with `purpose` and `file`, as the OpenAI SDK sends it."""
        from email.parser import BytesParser
        from email.policy import HTTP

        head = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + self.rfile.read(length))
        parts = {part.get_param("name", header="content-disposition"): part for part in form.iter_parts()}
        if "file" not in parts:
            self._error(400, "multipart form without a 'file' part", "invalid_request_error")
            return
        purpose = (parts["purpose"].get_payload(decode=True) or b"").decode() if "purpose" in parts else "batch"
        self._send_json(200, self.server.mock.add_file(parts["file"].get_payload(decode=True) or b"",
                                                       parts["file"].get_filename() or "upload.jsonl", purpose))

    def do_POST(self) -> None:
        mock = self.server.mock
        path = self.path.split("?", 1)[0].rstrip("/").removeprefix("/v1")
        if path == "/stats/reset":
            mock.reset_stats()
            self._send_json(200, {"ok": True})
            return
        if path == "/files":
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FILE_BYTES:
                self.close_connection = True
                self._error(413, f"file of {length} bytes exceeds {MAX_FILE_BYTES}", "invalid_request_error")
            else:
                self._upload(length)
            return
        if path == "/batches":
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except json.JSONDecodeError as exc:
                self._error(400, f"request body is not JSON: {exc}", "invalid_request_error")
                return
            batch = mock.create_batch(request)
            if batch is None:
                self._error(400, f"input_file_id {request.get('input_file_id')!r}: no such file", "invalid_request_error")
            else:
                self._send_json(200, batch)
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route POST {self.path}; this server speaks /v1/chat/completions", "not_found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}", "invalid_request_error")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self._error(400, f"request body is not JSON: {exc}", "invalid_request_error")
            return
        auth = self.headers.get("Authorization") or ""
        agent, fault, over_budget = mock._admit(body, auth.removeprefix("Bearer ").strip() or None)
        if over_budget:
            self._error(400, f"mock server: request budget of {mock.max_requests} spent", "invalid_request_error")
            return
        answered = False
        try:
            answered = self._answer(body, fault)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) or was killed
            self.close_connection = True
        finally:
            mock._done(answered, self.arrived_at)

    def parse_request(self) -> bool:
        self.arrived_at = time.perf_counter()  # the request line has just been read: the request is here
        return super().parse_request()

    def _answer(self, body: dict[str, Any], fault: FaultKind | None) -> bool:
        """Reply to one completion request (or misbehave as told). True when a normal answer went out."""
        mock = self.server.mock
        wait = mock.slow_s if fault == "slow" else mock.latency_for(body.get("messages"))
        answer = self._scripted_answer(body) if fault in (None, "slow") else None  # built inside the wait
        time.sleep(max(0.0, self.arrived_at + wait - time.perf_counter()))
        if answer is not None:
            self._send_raw(200, answer)
            return True
        if fault == "rate_limit":
            self._error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                        {"Retry-After": str(mock.retry_after_s)})  # HTTP allows whole seconds only
        elif fault == "server_error":
            self._error(500, "The server had an error while processing your request.", "server_error")
        elif fault == "unavailable":
            self._error(503, "The engine is currently overloaded, please try again later.", "server_error")
        elif fault == "policy_violation":
            self._error(400, "Your request was rejected as a result of our safety system.", "invalid_request_error",
                        "content_policy_violation")
        elif fault == "bad_key":
            key = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            self._error(401, f"Incorrect API key provided: {key}.", "invalid_request_error", "invalid_api_key")
        elif fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # linger 0: the peer gets a TCP RST instead of a reply
            self.close_connection = True
        elif fault == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-mock", "object": "chat.completion", "choices": [{"index": 0, "mess')
        elif fault == "empty":
            self._send_json(200, completion_body(body.get("model", "scripted"), "", [], "stop", _prompt_tokens(body)))
        elif fault == "content_filter":
            self._send_json(200, completion_body(body.get("model", "scripted"), None, [], "content_filter",
                                                 _prompt_tokens(body)))
        return False

    @staticmethod
    def _scripted_answer(body: dict[str, Any]) -> bytes:
        """The scripted model's reply to `body`, encoded."""
        messages = [dict(m, content=_text_of(m.get("content"))) for m in body.get("messages") or []]
        content, calls = scripted_reply(messages, body.get("tools"), body.get("seed"))
        return json.dumps(completion_body(body.get("model", "scripted"), content, calls, "tool_calls" if calls else "stop",
                                          _prompt_tokens(body))).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each reply")
    parser.add_argument("--latency-jitter", type=float, default=0.0,
                        help="spread each wait evenly over latency * (1 ± this), by a hash of the messages")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND[:TIMES[:AGENT[:MATCH]]]",
                        help=f"inject a fault; kinds: {', '.join(FAULT_KINDS)}")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with 429s")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--idle-exit", type=float, default=120.0, help="exit after this many seconds without requests")
    parser.add_argument("--batch-delay", type=float, default=0.5, help="seconds a batch stays in_progress")
    parser.add_argument("--expire-batches", type=int, default=0, help="the next N batches expire half done")
    args = parser.parse_args(argv)
    server = MockLLMServer(latency_s=args.latency, latency_jitter=args.latency_jitter, faults=[FaultRule.parse(f) for f in args.fault],
                           retry_after_s=args.retry_after, max_requests=args.max_requests,
                           idle_exit_s=args.idle_exit, port=args.port, batch_delay_s=args.batch_delay,
                           expire_batches=args.expire_batches).start()
    print(f"listening on {server.url}", flush=True)
    server.wait_stopped()
    print(f"stopped: {json.dumps(server.stats().as_json())}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
