"""``revise serve``: a web page to edit videos (upload a clip or pick a bundled example, type an
instruction, follow the progress, watch the edit beside the source with the model's own critic's
P(Yes) per dimension, download it), warned when the instruction or the clip lies outside what the
model knows.

* :mod:`.uploads`: what an upload must be (a video by its content; size, duration, frame limits).
* :mod:`.jobs`: the FIFO queue, one worker thread per device, the private folder and its clean-up.
* :mod:`.editor`: one job on one device: a (best-of-N) edit written as browser-playable mp4s.
* :mod:`.domain`: unknown words, clips unlike RVE-Synth, and what the critic's scores are.
* :mod:`.app`: the FastAPI routes and the static page (``static/``).
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from ..cli.common import add_lora_args, add_placement_args
from ..errors import ReviseInputError


def add_serve_command(sub: argparse._SubParsersAction, default_model: str, examples_dir: Path) -> None:
    """Register ``revise serve`` on the CLI's subcommands."""
    p = sub.add_parser("serve", help="a web page to edit videos (upload, instruction, result, critic scores)",
                       description="Serve a web page on which people upload a clip (or pick a bundled example), "
                                   "type an instruction and get the edit beside the source, with the model's own "
                                   "critic's P(Yes) per dimension. Jobs run one at a time per device, first come "
                                   "first served. Uploads and results live in a private temporary folder, deleted "
                                   "after download, after --keep-minutes, and on exit. There is no login: keep "
                                   "--host on loopback unless the network is trusted.")
    p.add_argument("--model", default=default_model,
                   help=f"preset name or model folder (default: {default_model})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_port, default=7860, help="port; 0 picks a free one (default: 7860)")
    p.add_argument("--device", default=None,
                   help="device, or several separated by commas (one worker each): cuda:0,cuda:1 "
                        "(default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="default: bfloat16 on a GPU, float32 on a CPU")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's own)")
    add_lora_args(p)
    add_placement_args(p)
    p.add_argument("--max-best-of", type=int, default=4, help="most candidates a user may ask for (default: 4)")
    p.add_argument("--max-upload-mb", type=float, default=64, help="largest upload in MiB (default: 64)")
    p.add_argument("--max-seconds", type=float, default=60, help="longest clip in seconds (default: 60)")
    p.add_argument("--max-side", type=int, default=4096, help="largest frame width or height (default: 4096)")
    p.add_argument("--max-queue", type=int, default=16, help="most jobs waiting at once (default: 16)")
    p.add_argument("--keep-minutes", type=float, default=15,
                   help="results not downloaded (and unused uploads) are deleted after this (default: 15)")
    p.set_defaults(func=cmd_serve, examples_dir=examples_dir)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 0 to 65535, not '{text}'")
    return port


def cmd_serve(args: argparse.Namespace) -> int:
    from ..models.lora import lora_option
    from ..pipelines.best_of import MAX_BEST_OF
    from .uploads import UploadLimits

    for name, value, low in (("--max-upload-mb", args.max_upload_mb, 0), ("--max-seconds", args.max_seconds, 0),
                             ("--max-side", args.max_side, 15), ("--max-queue", args.max_queue, 0),
                             ("--keep-minutes", args.keep_minutes, 0)):
        if not value > low:
            raise ReviseInputError(f"{name} must be more than {low}, not {value}")
    if not 1 <= args.max_best_of <= MAX_BEST_OF:
        raise ReviseInputError(f"--max-best-of must be from 1 to {MAX_BEST_OF}, not {args.max_best_of}")
    try:
        import uvicorn  # noqa: F401  (checked here to fail with one line, not a traceback)

        from .app import ServeSettings, create_app, load_examples
    except ImportError as err:
        raise ReviseInputError(f"revise serve needs fastapi and uvicorn ({err.name} is missing): "
                               "pip install fastapi uvicorn") from None
    from .editor import Editor
    from .jobs import JobQueue

    devices = [d.strip() for d in args.device.split(",")] if args.device is not None else [None]
    if args.device is not None and not all(devices):
        raise ReviseInputError(f"--device must be device names separated by commas, not '{args.device}'")
    lora = lora_option(args.lora, args.lora_scale)
    # each resolves the model's settings with --steps (checked) and its device, loading no weights yet
    editors = [Editor(args.model, device, args.dtype, args.steps, lora=lora, lora_scale=args.lora_scale,
                      offload=args.offload, quantize=args.quantize, encoder_weights=args.encoder_weights)
               for device in devices]
    limits = UploadLimits(max_bytes=int(args.max_upload_mb * 2**20), max_seconds=args.max_seconds,
                          max_side=args.max_side, min_frames=editors[0].options.num_frames)
    settings = ServeSettings(model=str(args.model), examples=load_examples(args.examples_dir), limits=limits,
                             max_best_of=args.max_best_of, unknown_words=editors[0].unknown_words)
    sock = listen(args.host, args.port)
    jobs = JobQueue(editors, ttl_s=args.keep_minutes * 60, max_waiting=args.max_queue)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    extra = f", LoRA {lora} at scale {args.lora_scale:g}" if lora is not None else ""
    print(f"revise serve: model {args.model}{extra} on {', '.join(e.device for e in editors)}; "
          f"open http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print("warning: the page has no login and listens beyond this machine", flush=True)
    run_server(create_app(jobs, settings), sock)
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A bound socket for ``host:port``; a bad address or a port in use is a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        raise ReviseInputError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def run_server(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM; the app's shutdown deletes its files."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:   # uvicorn re-raises Ctrl-C once it has shut down cleanly
        pass
    print("revise serve: stopped; its uploads and results are deleted", flush=True)
