"""A loopback HTTP server that speaks the OpenAI chat-completions API, for judge tests.

What it answers depends on a marker in the request's first text part, ``[case:NAME]`` (put there
through the item's instruction; none means ``good``): ``good`` replies with the four scores as JSON, ``rate`` answers
429 once then like good, ``error500`` always 500, ``slow`` sleeps past the client's timeout,
``malformed`` always replies with prose, ``fixable`` replies with prose until it is sent the repair
turn, ``quota`` answers 429 insufficient_quota. A key other than ``sk-test`` gets 401. Every request
is logged on arrival as (case, item text, whether it holds a repair turn); ``delay`` slows every reply.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time

KEY = "sk-test"


def scores_for(text: str) -> dict:
    """Deterministic scores from the item's instruction text."""
    h = sum(text.encode())
    return {"EA": 1 + h % 10, "PC": 1 + (h // 10) % 10, "GN": 1 + (h // 100) % 10, "GR": 1 + (h // 7) % 10}


class FakeOpenAI:
    def __init__(self, delay: float = 0.0, slow: float = 1.0):
        self.log: list[tuple[str, str, bool]] = []
        self.json_mode: list[bool] = []
        self.delay, self.slow = delay, slow
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload, headers = fake.answer(self.path, self.headers.get("Authorization", ""), body)
                if status is None:
                    return
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def requests_for(self, text_part: str) -> int:
        return sum(1 for _, t, _ in self.log if text_part in t)

    # ---- behaviour ------------------------------------------------------------------------
    def answer(self, path, auth, body):
        user = body["messages"][1]["content"]
        text = user[0]["text"] if isinstance(user, list) else user
        marker = re.search(r"\[case:(\w+)\]", text)
        case = marker.group(1) if marker else "good"
        images = sum(1 for part in user if part.get("type") == "image_url")
        repaired = any(m["role"] == "assistant" for m in body["messages"])
        self.json_mode.append(body.get("response_format") == {"type": "json_object"})
        with self._lock:
            self._seen[text] = self._seen.get(text, 0) + 1
            nth = self._seen[text]
            self.log.append((case, text, repaired))      # on arrival: a slow reply is logged at once
        return self._respond(path, auth, case, text, nth, repaired, images)

    def _respond(self, path, auth, case, text, nth, repaired, images):
        if not path.endswith("/chat/completions"):
            return 404, _error("not found", "invalid_request_error"), {}
        if auth != f"Bearer {KEY}":
            return 401, _error("Incorrect API key provided: sk-wr***ng.", "invalid_request_error",
                               "invalid_api_key"), {}
        if self.delay:
            time.sleep(self.delay)
        if case == "slow":
            time.sleep(self.slow)
            return None, None, {}                       # the client has given up; nothing to send
        if case == "error500":
            return 500, _error("The server had an error while processing your request.", "server_error"), {}
        if case == "quota":
            return 429, _error("You exceeded your current quota.", "insufficient_quota", "insufficient_quota"), {}
        if case == "rate" and nth == 1:
            return 429, _error("Rate limit reached for gpt-4o.", "requests", "rate_limit_exceeded"), \
                {"retry-after-ms": "20"}
        if case == "malformed" or (case == "fixable" and not repaired):
            content = "The edit looks mostly right; I would give it a 7 overall."
        else:
            content = json.dumps({**scores_for(text), "reason": "fake judge"})
        prompt_tokens = 85 * images + 400
        completion_tokens = max(1, len(content) // 4)
        return 200, {
            "id": f"chatcmpl-{nth}", "object": "chat.completion", "created": 0, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}, {}


def _error(message, kind, code=None):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
