"""A real OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

It "rephrases" by answering with the passage of the prompt, prefixed. Faults are injected
deterministically per prompt on its first attempt (``faults=True``): 429 with Retry-After,
500, a response slower than the client's timeout, malformed JSON, an empty completion, a
refusal. Every request is counted per prompt.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ["ok", "429", "500", "slow", "malformed", "ok", "ok", "empty", "refusal", "ok"]


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # listen backlog: many clients connect at once
    daemon_threads = True


class FakeLLM:
    def __init__(self, faults: bool = False, latency: float = 0.0, slow_seconds: float = 2.0) -> None:
        self.faults = faults
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.requests: Counter = Counter()  # prompt hash -> requests
        self.successes: Counter = Counter()  # prompt hash -> 200 answers with content
        self.lock = threading.Lock()
        handler = self._handler()
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def key(prompt: str) -> str:
        return hashlib.sha1(prompt.encode()).hexdigest()

    def fault_for_key(self, key: str) -> str:
        return FAULTS[int(key, 16) % len(FAULTS)] if self.faults else "ok"

    def fault_for(self, prompt: str, attempt: int) -> str:
        if not self.faults:
            return "ok"
        kind = self.fault_for_key(self.key(prompt))
        # Transport faults happen on the first attempt only; content faults are the model's answer.
        return kind if attempt == 1 or kind in ("empty", "refusal") else "ok"

    def _handler(self):
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self._send_unchecked(status, body, headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: expected in the timeout tests

            def _send_unchecked(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                req = json.loads(self.rfile.read(length))
                prompt = req["messages"][-1]["content"]
                k = llm.key(prompt)
                with llm.lock:
                    llm.requests[k] += 1
                    attempt = llm.requests[k]
                fault = llm.fault_for(prompt, attempt)
                if llm.latency:
                    time.sleep(llm.latency)
                if fault == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": "1"})
                if fault == "500":
                    return self._send(500, b'{"error": "boom"}')
                if fault == "slow":
                    time.sleep(llm.slow_seconds)
                if fault == "malformed":
                    return self._send(200, b'{"choices": [{"message": ')
                passage = prompt.split("\n\n", 1)[-1]
                content = {"empty": "", "refusal": "I'm sorry, but I cannot help with that request."}.get(
                    fault, "In other words: " + passage)
                if content:
                    with llm.lock:
                        llm.successes[k] += 1
                body = {"id": "x", "object": "chat.completion", "model": req.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                     "finish_reason": "stop"}]}
                self._send(200, json.dumps(body).encode())

        return Handler
