"""The browser helper itself: a page served on loopback renders and can be captured."""

import http.server
import threading

from browser import browser_page


def test_browser_renders_loopback_page(tmp_path):
    (tmp_path / "index.html").write_text("<html><body><h1 id='t'>revise</h1></body></html>")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with browser_page() as page:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            assert page.inner_text("#t") == "revise"
            shot = tmp_path / "shot.png"
            page.screenshot(path=str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.shutdown()
