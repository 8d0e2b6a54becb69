"""``revise bench run | score | report``: the RVE-Bench harness on the command line.

``revise/cli/__init__.py`` registers it with one call to :func:`add_bench_parser`; bad input ends as one
line on stderr and exit code 2 there, like every other command.
"""

from __future__ import annotations

import argparse
import os
import time

from ..errors import ReviseEnvironmentError, ReviseInputError
from ..synth.floors import INSTRUCTION_MODES

JUDGES = ("openai", "local", "synth")


def add_bench_parser(sub) -> None:
    from ..cli.common import _Parser

    p = sub.add_parser("bench", help="RVE-Bench: generate with any editor, score with ViCLIP_T and judges, report",
                       description="The RVE-Bench harness: 'run' makes every item's output, 'score' judges the "
                                   "outputs, 'report' tabulates one or more runs like the paper. Each step is "
                                   "resumable: finished items are skipped.")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    _add_run_parser(acts)
    _add_score_parser(acts)
    _add_report_parser(acts)


def _add_run_parser(acts) -> None:
    from ..cli.common import MODEL_HELP, _add_sampling_args, _model

    r = acts.add_parser("run", help="make an output video for every manifest item",
                        description="Make RUN_DIR/videos/{id}.mp4 for every item of a manifest with a ReViSE model "
                                    "(--model), an external editor command (--editor-cmd) or a folder of finished "
                                    "outputs named by item id (--videos). Finished items are skipped; items that "
                                    "failed are tried again only with --retry-failed. Several GPUs: torchrun "
                                    "--nproc_per_node N -m revise bench run ... (each rank takes every N-th item).")
    r.add_argument("--manifest", required=True, help="items: JSONL, or a JSON list (e.g. 'revise synth make' output)")
    r.add_argument("--out", required=True, help="run folder (created, or resumed)")
    how = r.add_mutually_exclusive_group(required=True)
    how.add_argument("--model", type=_model, help="ReViSE " + MODEL_HELP)
    how.add_argument("--editor-cmd", metavar="TEMPLATE",
                     help="shell command per item; fields {source} {instruction} {output} {id} {target} {subset} "
                          "{category} are filled in shell-quoted; it must write an mp4 to {output}")
    how.add_argument("--videos", metavar="DIR", help="folder of outputs named {id}.mp4 (or another video, or a "
                                                     "frame folder {id}/), e.g. a baseline's results")
    r.add_argument("--method", default=None, help="name in reports (default: from the model, command or folder)")
    r.add_argument("--instructions", choices=INSTRUCTION_MODES, default="own",
                   help="what the editor is told: own (default), neutral ('Do something.' for every item) or other "
                        "(the next item's instruction of its group: RVE-Synth v2 items share a source in groups). "
                        "The judge still scores against each item's own instruction and target, so neutral and "
                        "other runs are the method's instruction-blind floors; 'bench report' shows them beside "
                        "the own run of the same --method, with instruction sensitivity EA(own) - EA(other)")
    r.add_argument("--editor-timeout", type=float, default=None, help="seconds per item for --editor-cmd")
    r.add_argument("--retry-failed", action="store_true", help="try items that failed in an earlier run again")
    r.add_argument("--batch", type=int, default=1,
                   help="--model: items per pipeline call (default 1); each item's noise comes from its own seed "
                        "(SEED and its position in the manifest), so the batch changes an edit by float rounding only")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_sampling_args(r)
    r.set_defaults(func=cmd_run)


def _add_score_parser(acts) -> None:
    s = acts.add_parser("score", help="judge the outputs of one or more runs",
                        description="Score every output of each RUN_DIR with a judge (EA, PC, GN, GR on 1-10) and/or "
                                    "ViCLIP_T. Records go to RUN_DIR/scores/ item by item, so an interrupted run "
                                    "resumes; judge replies are cached, so re-scoring costs nothing.")
    s.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by 'revise bench run'")
    s.add_argument("--judge", choices=JUDGES, default=None,
                   help="openai: GPT-4o or any OpenAI-compatible endpoint; local: --local-model (the internal critic) "
                        "or --local-vlm (a transformers VLM); synth: the exact RVE-Synth judge")
    s.add_argument("--retry-failed", action="store_true", help="judge items recorded as failed again")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_openai_args(s.add_argument_group("openai judge"))
    lo = s.add_argument_group("local judge")
    lo.add_argument("--local-model", default=None, help="ReViSE model folder or preset whose critic judges")
    lo.add_argument("--local-vlm", default=None, help="transformers VLM folder (AutoModelForImageTextToText)")
    lo.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK if available, else cpu")
    lo.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                    help="the local judge's weights (default: bfloat16 on a GPU, float32 on a CPU)")
    v = s.add_argument_group("ViCLIP_T (text-video similarity)")
    v.add_argument("--viclip", default=None, help="ViCLIP checkpoint in InternVideo's layout (.pth or .safetensors)")
    v.add_argument("--viclip-tokenizer", default=None,
                   help="CLIP tokenizer folder for ViCLIP (default: the checkpoint's folder)")
    v.add_argument("--clip", default=None, help="fallback without ViCLIP: a transformers CLIPModel folder "
                                               "(frame-averaged; the report says so)")
    v.add_argument("--text-field", default="instruction", help="item field compared with the video (default "
                                                               "instruction)")
    s.set_defaults(func=cmd_score)


def _add_openai_args(o) -> None:
    o.add_argument("--base-url", default=None, help="default: $OPENAI_BASE_URL or https://api.openai.com/v1")
    o.add_argument("--judge-model", default=None, help="default: $REVISE_JUDGE_MODEL or gpt-4o")
    o.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY (prefer the variable: flags show in ps)")
    o.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    o.add_argument("--max-retries", type=int, default=5, help="retries after 429/5xx/timeouts (default 5)")
    o.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds, doubled each time")
    o.add_argument("--malformed-retries", type=int, default=2, help="repair turns after a malformed reply (default 2)")
    o.add_argument("--judge-frames", type=int, default=4, help="frames sent per clip, source and output (default 4)")
    o.add_argument("--detail", choices=["low", "high", "auto"], default="low", help="image detail (default low)")
    o.add_argument("--workers", type=int, default=4, help="requests in flight (default 4)")
    o.add_argument("--no-json-mode", action="store_true",
                   help="do not ask for response_format json_object (for servers without it; the reply is still "
                        "parsed strictly)")
    o.add_argument("--cache", default=None, help="reply cache (default: RUN_DIR/scores/cache.sqlite)")
    o.add_argument("--refresh-cache", action="store_true",
                   help="ask the endpoint even where a reply is cached (e.g. with --retry-failed after malformed "
                        "replies); new replies replace the cached ones")
    _add_price_args(o)


def _add_report_parser(acts) -> None:
    t = acts.add_parser("report", help="tables, charts and an HTML gallery of one or more scored runs",
                        description="Write report.md and report.csv (a table per subset and category: methods x "
                                    "metrics, best in bold), chart_{subset}.png and gallery.html to --out.")
    t.add_argument("runs", nargs="+", metavar="RUN_DIR", help="scored run folders ('revise bench score')")
    t.add_argument("--out", default="bench-report", help="report folder (default: bench-report)")
    t.add_argument("--judge", default=None, help="which judge's scores, when the runs hold several (a name or prefix)")
    t.add_argument("--overall", default="mean", metavar="mean|EA=w,PC=w,GN=w,GR=w",
                   help="Overall formula (default: the paper's mean of EA, PC, GN, GR)")
    t.add_argument("--no-gallery", action="store_true", help="skip gallery.html")
    _add_price_args(t)
    t.set_defaults(func=cmd_report)


def _add_price_args(group) -> None:
    from .judges.openai_judge import PRICE_INPUT_PER_M, PRICE_OUTPUT_PER_M

    group.add_argument("--price-input", type=float, default=PRICE_INPUT_PER_M,
                       help=f"USD per 1M input tokens (default {PRICE_INPUT_PER_M:g}: GPT-4o list price)")
    group.add_argument("--price-output", type=float, default=PRICE_OUTPUT_PER_M,
                       help=f"USD per 1M output tokens (default {PRICE_OUTPUT_PER_M:g}: GPT-4o list price)")


# ---- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from ..cli.common import _quiet_libraries as quiet_libraries
    from .manifest import load_manifest, told_items
    from .run import CommandEditor, FolderImport, ModelEditor, generate
    from .rundir import RunDir

    if args.batch < 1:
        raise ReviseInputError(f"--batch must be at least 1, not {args.batch}")
    items = load_manifest(args.manifest)
    told = told_items(items, args.instructions)
    if args.model is not None:
        quiet_libraries()
        editor = ModelEditor(args.model, frames=args.frames, size=args.size, steps=args.steps,
                             guidance=args.guidance, shift=args.shift, solver=args.solver, seed=args.seed,
                             device=args.device, dtype=args.dtype, batch_size=args.batch)
    elif args.editor_cmd is not None:
        editor = CommandEditor(args.editor_cmd, args.editor_timeout)
    else:
        editor = FolderImport(args.videos)
    run = RunDir(args.out)
    base = args.method or editor.default_method
    own = args.instructions == "own"
    run.start(items, base if own else f"{base} [told: {args.instructions}]",
              editor.spec if own else {**editor.spec, "instructions": args.instructions},
              manifest=os.path.abspath(args.manifest), instructions=args.instructions, base_method=base)
    s = generate(run, told, editor, retry_failed=args.retry_failed, progress=not args.quiet)
    where = "" if s.world == 1 else f"rank {s.rank}/{s.world}: "
    kept = f", {s.kept_failed} failed earlier (kept; --retry-failed tries them again)" if s.kept_failed else ""
    print(f"{where}{run.method}: generated {s.generated}, {s.skipped} already done, {s.failed} failed{kept} "
          f"of {s.shard} items in {s.seconds:.1f} s -> {run.videos}")
    if s.failed:
        print(f"failures and their reasons: {run.path / 'generation*.jsonl'}")
    if s.failed and not s.generated and not s.skipped:
        raise ReviseEnvironmentError(f"every item failed ({s.failed} of {s.shard}): nothing was generated; "
                                     f"the reasons are in {run.path / 'generation*.jsonl'}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .rundir import RunDir
    from .score import TextVideoJudge, score_run

    if args.judge is None and not (args.viclip or args.clip):
        raise ReviseInputError("nothing to score: give --judge and/or --viclip / --clip")
    runs = [RunDir(p) for p in args.runs]
    for r in runs:
        r.meta()                                   # every folder is a run before anything is scored
    jobs = []                                      # (judge, workers, check) for every run
    if args.viclip or args.clip:
        text_video = TextVideoJudge(_text_video_scorer(args), args.text_field)
        jobs.append(lambda run: (text_video, 1, None))
    if args.judge:
        jobs.append(_judge_factory(args))
    for run in runs:
        for job in jobs:
            judge, workers, check = job(run)
            start = time.perf_counter()
            s = score_run(run, judge, workers=workers, retry_failed=args.retry_failed, progress=not args.quiet,
                          check=check)
            extra = _openai_usage(judge, args)
            print(f"{run.method} [{judge.name}]: scored {s.scored}, {s.failed} failed, {s.skipped} already done, "
                  f"{s.missing} without video, of {s.shard} items in {time.perf_counter() - start:.1f} s{extra}")
            for line in s.failures[:5]:
                print(f"  failed {line}")
            if len(s.failures) > 5:
                print(f"  ... and {len(s.failures) - 5} more in {run.scores}")
    return 0


def _judge_factory(args: argparse.Namespace):
    """``run -> (judge, workers, check)``. Models load once for all runs; the OpenAI judge's reply cache is
    the run's own unless --cache names one."""
    if args.judge == "synth":
        from .judges.synth import SynthJudge
        synth = SynthJudge()
        return lambda run: (synth, 1, synth.check)
    if args.judge == "local":
        if bool(args.local_model) == bool(args.local_vlm):
            raise ReviseInputError("--judge local needs exactly one of --local-model (critic) or --local-vlm")
        from ..cli.common import _quiet_libraries as quiet_libraries
        from .judges.local import CriticJudge, VLMJudge
        quiet_libraries()
        local = CriticJudge(args.local_model, args.device, args.dtype) if args.local_model \
            else VLMJudge(args.local_vlm, args.device, args.dtype, frames=args.judge_frames)
        return lambda run: (local, 1, None)
    from .cache import ReplyCache
    from .judges.openai_judge import DEFAULT_BASE_URL, DEFAULT_MODEL, OpenAIJudge, OpenAISettings

    for name in ("max_retries", "malformed_retries"):
        if getattr(args, name) < 0:
            raise ReviseInputError(f"--{name.replace('_', '-')} must be 0 or more")
    if args.workers < 1 or args.judge_frames < 1 or args.timeout <= 0:
        raise ReviseInputError("--workers and --judge-frames must be at least 1, --timeout positive")
    settings = OpenAISettings(
        base_url=args.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        model=args.judge_model or os.environ.get("REVISE_JUDGE_MODEL") or DEFAULT_MODEL,
        api_key=args.api_key or os.environ.get("OPENAI_API_KEY"), timeout=args.timeout,
        max_retries=args.max_retries, backoff=args.backoff, malformed_retries=args.malformed_retries,
        frames=args.judge_frames, detail=args.detail, json_mode=not args.no_json_mode)
    OpenAIJudge.check_settings(settings)
    return lambda run: (OpenAIJudge(settings, ReplyCache(args.cache or run.scores / "cache.sqlite",
                                                                    read=not args.refresh_cache)), args.workers,
                        None)


def _text_video_scorer(args: argparse.Namespace):
    from .judges.viclip import CLIPFrameScorer, ViCLIPScorer
    from .ranks import local_device

    device = args.device or local_device()
    if args.viclip:
        return ViCLIPScorer(args.viclip, args.viclip_tokenizer, device=device)
    return CLIPFrameScorer(args.clip, device=device)


def _openai_usage(judge, args: argparse.Namespace) -> str:
    if not hasattr(judge, "network_requests"):
        return ""
    from .judges.openai_judge import cost_usd

    prompt, completion = judge.sent_tokens
    cost = cost_usd(prompt, completion, args.price_input, args.price_output)
    return (f"; {judge.network_requests} requests sent ({prompt:,} prompt + {completion:,} completion tokens, "
            f"${cost:.4f} at ${args.price_input:g}/${args.price_output:g} per 1M), "
            f"{judge.cached_replies} replies from the cache")


def cmd_report(args: argparse.Namespace) -> int:
    from .metrics import OverallFormula
    from .outputs import write_report

    formula = OverallFormula.parse(args.overall)
    paths = write_report(args.runs, args.out, judge=args.judge, formula=formula, price_input=args.price_input,
                         price_output=args.price_output, gallery=not args.no_gallery)
    print(paths["text"])
    wrote = [paths["markdown"], paths["csv"], *paths["charts"]] + ([paths["gallery"]] if "gallery" in paths else [])
    print("wrote " + ", ".join(str(p) for p in wrote))
    return 0
