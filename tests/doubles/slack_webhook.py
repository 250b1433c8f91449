"""A Slack incoming-webhook server on loopback, following Slack's published behaviour.

``POST /services/<team>/<bot>/<secret>`` with a JSON body holding ``text`` answers 200 ``ok``; a
body without ``text`` answers 400 ``no_text``; an unknown path 404 ``no_service``; a body that is
not JSON 400 ``invalid_payload``. Every accepted payload is kept in ``posts``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOOK_PATH = "/services/T000/B000/holdcast-test"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path != HOOK_PATH:
            return self._answer(404, "no_service")
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._answer(400, "invalid_payload")
        if not isinstance(payload, dict) or not payload.get("text"):
            return self._answer(400, "no_text")
        self.server.posts.append(payload)
        return self._answer(200, "ok")


class SlackWebhookServer:
    """Runs the webhook on 127.0.0.1 on a free port while the ``with`` block lasts."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.posts = []
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{HOOK_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def posts(self) -> list[dict]:
        return list(self._server.posts)

    def __enter__(self) -> SlackWebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
