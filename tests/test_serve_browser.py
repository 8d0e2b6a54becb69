"""The web page in a real browser (Debian's chromium via Playwright): upload a bundled clip, submit an
instruction with the tiny preset, wait for the result, check that both clips play and the critic's
scores are shown as its self-assessment, and take a screenshot; then that an instruction the server
would refuse uploads nothing and that unknown words are warned about. Skips, saying why, only where
chromium cannot be had."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from browser import browser_page
from revise.cli import DEFAULT_MODEL, EXAMPLES_DIR
from revise.serve import listen
from revise.serve.app import ServeSettings, create_app, load_examples
from revise.serve.editor import Editor
from revise.serve.jobs import JobQueue
from revise.serve.uploads import UploadLimits

PLAYABLE = """(id) => { const v = document.getElementById(id);
                       return v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0 && !v.error; }"""


@pytest.fixture
def server():
    """The page on a free loopback port, the tiny preset with 2 denoising steps; stopped afterwards."""
    import uvicorn

    examples = load_examples(EXAMPLES_DIR)
    jobs = JobQueue([Editor("tiny", "cpu", steps=2)])
    words = Editor(DEFAULT_MODEL, "cpu").unknown_words       # the bundled model's vocabulary, without its weights
    app = create_app(jobs, ServeSettings(model="tiny", examples=examples, max_best_of=2, unknown_words=words,
                                         limits=UploadLimits(max_bytes=2**20, min_frames=17)))
    sock = listen("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/", examples, jobs
    finally:
        srv.should_exit = True
        thread.join(30)
        sock.close()
    assert not jobs.root.exists()


def test_upload_edit_and_watch_in_chromium(server, tmp_path):
    url, examples, jobs = server
    with browser_page() as page:
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("request", lambda r: requests.append(r.method + " " + r.url.split("?")[0].removeprefix(url[:-1])))
        page.goto(url)
        page.wait_for_function("() => document.getElementById('example').options.length > 1")
        page.select_option("#example", "")                       # upload my own clip
        page.set_input_files("#file", str(examples[0]["path"]))
        page.fill("#instruction", examples[0]["instruction"])
        page.fill("#best-of", "2")
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=240_000)
        posts = [r for r in requests if r.startswith("POST")]
        assert posts[:3] == ["POST /api/check", "POST /api/uploads", "POST /api/jobs"], posts
        for video in ("source-video", "edited-video"):
            page.wait_for_function(PLAYABLE, arg=video, timeout=30_000)
        sizes = page.evaluate("() => ['source-video', 'edited-video'].map(id => { const v = document.getElementById(id);"
                              " return [v.videoWidth, v.videoHeight, v.duration]; })")
        assert all(w == 64 and h == 64 and d > 1.0 for w, h, d in sizes), sizes
        rows = page.eval_on_selector_all("#scores tbody tr", "rows => rows.map(r => [r.dataset.dimension, "
                                         "r.querySelector('.p').textContent])")
        assert [r[0] for r in rows] == ["overall", "edit_accuracy", "preservation_consistency",
                                        "generation_naturalness", "generation_realism"]
        assert all(0 < float(p) < 1 for _, p in rows), rows
        assert "Best of 2: kept seed" in page.inner_text("#candidates")
        assert "self-assessment" in page.inner_text("#scores caption")
        assert "0.53-0.60 of pairs" in page.inner_text("#critic-note")
        assert page.get_attribute("#download", "href").endswith("/download")
        assert page.is_hidden("#error") and not errors, errors
        shot = tmp_path / "serve.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("REVISE_SCREENSHOT_DIR"):                # keep it for people to look at
            shutil.copy(shot, Path(os.environ["REVISE_SCREENSHOT_DIR"]) / "serve.png")

        # a file that is not a video: one clear line on the page, nothing kept on the server
        fake = tmp_path / "holiday.mp4"
        fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
        page.set_input_files("#file", str(fake))
        page.click("#submit")
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == ("the upload is not a video: its content is none of MP4/MOV, "
                                             "WebM/MKV, GIF or AVI")
        assert not list(jobs.uploads_dir.iterdir())

        # an instruction the server would refuse: said on the page, and nothing is uploaded
        page.set_input_files("#file", str(examples[0]["path"]))
        for bad, message in (("make it \ud800 red", "not valid text"), ("   ", "Type an instruction")):
            requests.clear()
            page.evaluate("(text) => { document.getElementById('instruction').value = text; }", bad)
            page.click("#submit")
            page.wait_for_function("(m) => document.getElementById('error').textContent.includes(m)", arg=message)
            assert not [r for r in requests if r.startswith("POST")], requests

        # words outside the model's vocabulary: a warning beside the job, which still runs
        if DEFAULT_MODEL != "tiny":
            page.select_option("#example", examples[0]["name"])
            page.fill("#instruction", "make the zebra red")
            page.click("#submit")
            page.wait_for_selector("#warnings:not([hidden])")
            assert "'zebra'" in page.inner_text("#warnings") and page.is_hidden("#error")
            page.wait_for_selector("#result:not([hidden])", timeout=240_000)
