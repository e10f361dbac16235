"""An HTTP proxy in front of the moto S3 server that throttles as S3 does under load: it answers
bursts of ``503 SlowDown`` (the XML body S3 sends) instead of forwarding, and forwards every
other request unchanged. Issue 20, item 7: Common Crawl's bucket does this (datatrove #302)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpers.servers import free_port

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>winnow-test</RequestId></Error>")


class ThrottleProxy:
    """Forward to ``127.0.0.1:target_port``; of every ``period`` requests, the first ``burst``
    get 503 SlowDown (so a burst hits retries of the same request too). ``throttled`` counts
    the 503s sent, ``forwarded`` the rest."""

    def __init__(self, target_port: int, period: int = 10, burst: int = 3) -> None:
        self.target_port = target_port
        self.period = period
        self.burst = burst
        self.throttled = 0
        self.forwarded = 0
        self._n = 0
        self._lock = threading.Lock()
        self.port = free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: tests read their own output
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._throttle():
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    resp = upstream.getresponse()
                    data = resp.read()
                finally:
                    upstream.close()
                self.send_response(resp.status, resp.reason)
                head = self.command == "HEAD"  # its Content-Length is the object's: pass it on
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "server", "date") \
                            and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _throttle(self) -> bool:
        with self._lock:
            self._n += 1
            hit = self.period > 0 and (self._n - 1) % self.period < self.burst
            if hit:
                self.throttled += 1
            else:
                self.forwarded += 1
            return hit

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
