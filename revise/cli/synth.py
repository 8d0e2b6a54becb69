"""``revise synth make | score | generate | eval | label | pairs | critic``: RVE-Synth on the command line."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..errors import ReviseInputError
from ..synth.dataset import CLIP_FORMATS
from ..synth.floors import INSTRUCTION_MODES
from .common import MODEL_HELP, _add_sampling_args, _model, _Parser, _quiet_libraries, _size

#: The largest RVE-Synth clip side (the scenes are drawn for 64x64; H.264 needs even sides).
MAX_SYNTH_SIDE = 1024


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="RVE-Synth: make reasoning edits with exact targets, score clips exactly",
                       description="RVE-Synth, a procedural 2D world whose edits need reasoning (causal, temporal, "
                                   "spatial, commonsense) and whose targets are exact.")
    syn = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    for add in (_add_make, _add_score, _add_generate, _add_eval, _add_label, _add_pairs, _add_critic):
        add(syn)


def _add_make(syn) -> None:
    m = syn.add_parser("make", help="write a split: mp4 (or npy) clips, SPLIT.json and a contact sheet PNG",
                       description="Write N items of a split (train/val/test hold out whole phrasings and object "
                                   "combinations) as source/target mp4s (or .npy arrays, --format npy), SPLIT.json "
                                   "in the training/bench format, and SPLIT_sheet.png for people. The same seed "
                                   "writes the same bytes.")
    m.add_argument("--n", type=int, required=True, help="number of items")
    m.add_argument("--split", choices=["train", "val", "test"], required=True,
                   help="which split: each holds out its own phrasings and object combinations")
    m.add_argument("--seed", type=int, default=0, help="the split's seed: the same seed writes the same bytes "
                                                       "(default 0)")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--size", type=_size, default=(64, 64), metavar="WxH", help="clip size (default 64x64)")
    m.add_argument("--frames", type=int, default=17, help="frames per clip, 4n+1 (default 17)")
    m.add_argument("--critic", action="store_true",
                   help="also write critic data: candidate clips and SPLIT_critic.json (Yes/No per question)")
    m.add_argument("--workers", type=int, default=None, help="worker processes (default: 2)")
    m.add_argument("--format", choices=CLIP_FORMATS, default="mp4",
                   help="clip files: mp4 (H.264, default) or npy (uint8 [F, H, W, 3] arrays: exact pixels, written "
                        "and read without a video codec or PyAV, no decoding in training; ~60x the disk space)")
    m.add_argument("--combos", choices=["train", "val", "test"], default=None,
                   help="main-object colour/shape combinations of another split (a diagnostic: '--split test "
                        "--combos train' holds out the phrasings alone, '--split train --combos test' the "
                        "combinations alone); default: the split's own")
    m.set_defaults(func=cmd_synth_make)


def _add_score(syn) -> None:
    sc = syn.add_parser("score", help="score generated clips with the exact judge",
                        description="Score VIDEOS/{id}.mp4 (or {id}.npy) for each item of a split with the exact "
                                    "judge: EA, PC, GN, GR on 1-10 and Overall (their mean). VIDEOS may be 'source' "
                                    "or 'target' to score the unedited sources or the exact targets.")
    sc.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    sc.add_argument("--videos", required=True, help="folder of {id}.mp4 or {id}.npy, or 'source' / 'target'")
    sc.add_argument("--out", default=None, help="write per-item scores and the summary to this JSON file")
    sc.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    sc.add_argument("--neutral", default=None, help="the same model's clips for a neutral instruction "
                    "('synth generate --instructions neutral'): printed as an instruction-blind floor")
    sc.add_argument("--other", default=None, help="its clips for another item's instruction on the same source "
                    "('synth generate --instructions other'): a floor, and instruction sensitivity = EA(own) - "
                    "EA(other)")
    sc.set_defaults(func=cmd_synth_score)


def _add_generate(syn) -> None:
    g = syn.add_parser("generate", help="edit every item of a split with a model (batched, resumable)",
                       description="Edit each item's source clip by its instruction with a model and write "
                                   "OUT/{id}.mp4 or .npy (existing outputs are kept, so a killed run resumes). "
                                   "Score them with 'revise synth score --videos OUT'.")
    g.add_argument("--model", type=_model, required=True, help=MODEL_HELP)
    g.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--batch", type=int, default=32, help="items per batch (default 32)")
    g.add_argument("--format", choices=CLIP_FORMATS, default="mp4",
                   help="output clips: mp4 (default) or npy (uint8 arrays, exact pixels, no codec)")
    g.add_argument("--instructions", choices=INSTRUCTION_MODES, default="own",
                   help="own (default); neutral: every item asked 'Do something.'; other: the next item's "
                        "instruction of the same source group (the instruction-blind floors)")
    g.add_argument("--x0-sigma", type=float, default=None,
                   help="instead of edits, the one-step x0 estimates that RWO and USO show the critic: each "
                        "target noised to this level (0-1) and denoised in one DiT step")
    _add_sampling_args(g)
    g.set_defaults(func=cmd_synth_generate)


def _add_eval(syn) -> None:
    e = syn.add_parser("eval", help="edit a split with a model and score the edits, floors included",
                       description="What 'synth generate' (once per --instructions mode) and 'synth score' do, with "
                                   "the model loaded once: OUT/MODE/ holds each mode's clips (existing ones are "
                                   "kept, so a killed run resumes) and OUT/scores.json the own-instruction scores, "
                                   "with the other modes as instruction-blind floors ('synth score --neutral "
                                   "--other': the unedited source too, and instruction sensitivity with 'other').")
    e.add_argument("--model", type=_model, required=True, help=MODEL_HELP)
    e.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--instructions", choices=INSTRUCTION_MODES, nargs="+", default=["own"],
                   help="modes to generate, own among them (default: own alone): own, neutral ('Do something.'), "
                        "other (the next item's instruction of the same source group)")
    e.add_argument("--batch", type=int, default=32, help="items per batch (default 32)")
    e.add_argument("--format", choices=CLIP_FORMATS, default="npy",
                   help="clips: npy (default: exact pixels, what the judge should see) or mp4")
    e.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    _add_sampling_args(e)
    e.set_defaults(func=cmd_synth_eval)


def _add_label(syn) -> None:
    lb = syn.add_parser("label", help="turn a model's judged edits into critic training data",
                        description="Make critic records (one per question, as 'revise synth make --critic' "
                                    "writes them) for the clips VIDEOS/{id}.npy or .mp4 that a model generated for "
                                    "SPLIT.json, labelled by their exact-judge scores (SCORES.json from 'revise "
                                    "synth score --out'): per dimension Yes at or above --yes-at, No at or below "
                                    "--no-at, not asked in between; overall No if any is No, Yes if all are Yes. "
                                    "--merge prepends an existing critic file's records, so that OUT trains the "
                                    "critic on both.")
    lb.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    lb.add_argument("--videos", required=True, help="folder of the generated {id}.npy or {id}.mp4")
    lb.add_argument("--scores", required=True, help="their scores: the JSON 'revise synth score --out' wrote")
    lb.add_argument("--out", required=True, help="critic records to write (paths in it are relative to its folder)")
    lb.add_argument("--merge", default=None, help="a critic JSON whose records come first in OUT")
    lb.add_argument("--yes-at", type=float, default=8.0, help="judge score (1-10) from which a dimension is Yes")
    lb.add_argument("--no-at", type=float, default=5.0, help="judge score (1-10) up to which a dimension is No")
    lb.set_defaults(func=cmd_synth_label)


def _add_pairs(syn) -> None:
    pr = syn.add_parser("pairs", help="turn several judged edits of each item into critic preference pairs",
                        description="Make preference pairs for the critic ('objective: critic_pairwise') from "
                                    "two or more edits of each item of SPLIT.json (VIDEOS/{id}.npy or .mp4, e.g. "
                                    "'revise synth generate --seed K' for several K), each folder scored by the "
                                    "exact judge (SCORES.json from 'revise synth score --out', in the same order): "
                                    "every two edits of an item whose judge score differs by at least --min-gap "
                                    "give a pair for the overall question (ordered by the judge's overall score) "
                                    "and one for the edit-accuracy question (ordered by EA). --merge prepends "
                                    "a critic file's records (e.g. 'revise synth label' output), so that OUT "
                                    "trains both answers and order.")
    pr.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    pr.add_argument("--videos", required=True, nargs="+", help="folders of generated {id}.npy or {id}.mp4")
    pr.add_argument("--scores", required=True, nargs="+", help="each folder's scores ('revise synth score --out')")
    pr.add_argument("--out", required=True, help="critic records to write (paths in it are relative to its folder)")
    pr.add_argument("--merge", default=None, help="a critic JSON whose records come first in OUT")
    pr.add_argument("--min-gap", type=float, default=1.0, help="the least judge-score difference (1-10 scale) of a pair")
    pr.set_defaults(func=cmd_synth_pairs)


def _add_critic(syn) -> None:
    c = syn.add_parser("critic", help="measure a model's internal critic on critic data",
                       description="Ask the model's critic every question of SPLIT_critic.json (written by "
                                   "'revise synth make --critic'); print accuracy per question and candidate kind.")
    c.add_argument("--model", type=_model, required=True, help=MODEL_HELP)
    c.add_argument("--data", required=True, help="SPLIT_critic.json")
    c.add_argument("--out", default=None, help="write the report to this JSON file")
    c.add_argument("--batch", type=int, default=32, help="questions per batch (default 32)")
    c.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    c.set_defaults(func=cmd_synth_critic)

def cmd_synth_make(args: argparse.Namespace) -> int:
    from ..synth.dataset import contact_sheet_png, make_dataset

    if args.n < 1:
        raise ReviseInputError(f"--n must be at least 1, not {args.n}")
    if args.frames < 1 or (args.frames - 1) % 4:
        raise ReviseInputError(f"--frames must be 4n+1, not {args.frames}")
    width, height = args.size
    if not (16 <= width <= MAX_SYNTH_SIDE and 16 <= height <= MAX_SYNTH_SIDE) or width % 2 or height % 2:
        raise ReviseInputError(f"--size must be even and from 16 to {MAX_SYNTH_SIDE} a side, not {width}x{height}")
    start = time.perf_counter()
    if args.workers is not None and args.workers < 1:
        raise ReviseInputError(f"--workers must be at least 1, not {args.workers}")
    records = make_dataset(args.n, args.split, args.seed, args.out, height=height, width=width, frames=args.frames,
                           workers=args.workers, critic=args.critic, clip_format=args.format,
                           combo_split=args.combos)
    sheet = contact_sheet_png(records, Path(args.out) / f"{args.split}_sheet.png", height=height, width=width)
    print(f"wrote {len(records)} {args.split} items to {Path(args.out) / (args.split + '.json')} and {sheet} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_synth_score(args: argparse.Namespace) -> int:
    from ..synth.evaluate import floors_report, score_split

    if args.workers < 1:
        raise ReviseInputError(f"--workers must be at least 1, not {args.workers}")
    start = time.perf_counter()
    result = score_split(args.data, args.videos, workers=args.workers)
    if args.neutral or args.other:
        result["floors"] = floors_report(args.data, result, args.neutral, args.other, workers=args.workers)
    print(f"scored in {time.perf_counter() - start:.1f} s with {args.workers} worker(s)")
    _report_scores(result, args.out)
    return 0


def _report_scores(result: dict, out: str | Path | None) -> None:
    """Print a scored split's summary (and floors), and write it to ``out`` (JSON) when given."""
    import json

    from ..atomic import write_text
    from ..synth.evaluate import METRICS

    print("| group | n | missing | " + " | ".join(METRICS) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |")
    for group, row in result["summary"].items():
        print(f"| {group} | {row['n']} | {row['missing']} | " + " | ".join(f"{row[m]:.2f}" for m in METRICS) + " |")
    if "floors" in result:
        _print_floors(result["floors"])
    if out:
        write_text(out, json.dumps(result, indent=1))


def _print_floors(floors: dict) -> None:
    """The instruction-blind floors beside the own-instruction scores (``floors_report``'s result)."""
    print("\n| instruction-blind floors (all items) | EA [95%] | Overall [95%] |\n| --- | --- | --- |")
    for name, row in floors["rows"].items():
        ea, ov = row["interval95"]["EA"], row["interval95"]["overall"]
        print(f"| {name} | {row['EA']:.2f} [{ea[0]:.2f}, {ea[1]:.2f}] | {row['overall']:.2f} [{ov[0]:.2f}, {ov[1]:.2f}] |")
    if "sensitivity" in floors:
        sens = floors["sensitivity"]
        lo, hi = sens["interval95"]
        print(f"instruction sensitivity EA(own) - EA(other): {sens['mean']:.2f} [{lo:.2f}, {hi:.2f}] "
              f"over {sens['n']} items")


def _editor(args: argparse.Namespace):
    """The bench harness's model editor (:mod:`revise.bench.run`) for generate's and eval's arguments."""
    from ..bench.run import ModelEditor

    if args.batch < 1:
        raise ReviseInputError(f"--batch must be at least 1, not {args.batch}")
    return ModelEditor(args.model, frames=args.frames, size=args.size, steps=args.steps, guidance=args.guidance,
                       shift=args.shift, solver=args.solver, seed=args.seed, device=args.device, dtype=args.dtype,
                       batch_size=args.batch)


def cmd_synth_generate(args: argparse.Namespace) -> int:
    """The bench harness's generation (:mod:`revise.bench.run`) into a flat folder of clips."""
    from ..bench.run import generate_folder
    from ..synth.dataset import split_items

    if args.x0_sigma is not None and not 0.0 < args.x0_sigma < 1.0:
        raise ReviseInputError(f"--x0-sigma must be in (0, 1), not {args.x0_sigma}")
    editor = _editor(args)
    items = split_items(args.data, "own" if args.x0_sigma is not None else args.instructions)
    _quiet_libraries()
    pipe, desc = editor.pipeline(), "generating"
    if args.x0_sigma is not None:
        from ..synth.run import X0Editor

        desc = f"x0 estimates at sigma {args.x0_sigma}"
        editor = X0Editor(pipe.model, args.x0_sigma, seed=args.seed, batch_size=args.batch)
    start = time.perf_counter()
    out = generate_folder(items, editor, args.out, clip_format=args.format, desc=desc)
    print(f"generated {args.data} -> {out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_synth_eval(args: argparse.Namespace) -> int:
    """generate for each mode, then score, in one process (the model loaded once)."""
    from ..bench.run import generate_folder
    from ..synth.dataset import split_items
    from ..synth.evaluate import floors_report, score_split

    modes = list(dict.fromkeys(args.instructions))
    if "own" not in modes:
        raise ReviseInputError("--instructions must include own: the floors are read beside the own-instruction edits")
    if args.workers < 1:
        raise ReviseInputError(f"--workers must be at least 1, not {args.workers}")
    editor = _editor(args)
    items = {mode: split_items(args.data, mode) for mode in modes}     # every input checked before the model loads
    _quiet_libraries()
    editor.pipeline()
    out = Path(args.out)
    start = time.perf_counter()
    for mode in modes:
        generate_folder(items[mode], editor, out / mode, clip_format=args.format, desc=f"generating ({mode})")
    generated = time.perf_counter()
    result = score_split(args.data, out / "own", workers=args.workers)
    if len(modes) > 1:
        result["floors"] = floors_report(args.data, result, out / "neutral" if "neutral" in modes else None,
                                         out / "other" if "other" in modes else None, workers=args.workers)
    print(f"generated {', '.join(modes)} in {generated - start:.1f} s, scored in {time.perf_counter() - generated:.1f} s "
          f"with {args.workers} worker(s)")
    _report_scores(result, out / "scores.json")
    return 0


def _judged_edits(data: Path, edit_sets: list[tuple[str, str]], out: Path) -> tuple[list[dict], list[tuple[list[dict], dict[str, str]]]]:
    """A split's records (source paths relative to OUT's folder), read once, and for each (VIDEOS,
    SCORES.json from 'revise synth score --out') of ``edit_sets`` the judge's rows for those edits and
    each edit's path relative to OUT's folder."""
    import json

    from ..manifest import read_json_list
    from ..synth.dataset import load_items
    from ..synth.evaluate import find_clip

    for videos, _ in edit_sets:
        if not Path(videos).is_dir():
            raise ReviseInputError(f"video folder {videos} does not exist")
    load_items(data)                                # a clear error for a file that is not a split
    split = read_json_list(data, "RVE-Synth split")
    judged = []
    for videos, scores_path in edit_sets:
        try:
            scores = json.loads(Path(scores_path).read_text())
            rows = [r for r in scores["items"] if r["id"] and (r.get("missing") or all(
                isinstance(r[m], (int, float)) for m in ("EA", "PC", "GN", "GR", "overall")))]
        except (OSError, ValueError, KeyError, TypeError):
            raise ReviseInputError(f"{scores_path} is not a scores file written by 'revise synth score --out'") from None
        clips = {}
        for r in split:
            found = find_clip(Path(videos), r["id"])  # the clip synth score scored
            if found is not None:
                clips[r["id"]] = os.path.relpath(found, out.parent)
        judged.append((rows, clips))
    split = [{**r, "source_video_path": _rebase(r["source_video_path"], data.parent, out)} for r in split]
    return split, judged


def _rebase(rel: str, folder: Path, out: Path) -> str:
    """A path relative to ``folder``, made relative to OUT's folder."""
    p = Path(rel)
    return str(p) if p.is_absolute() else os.path.relpath(folder / p, out.parent)


def _merged(merge: str | None, out: Path) -> list[dict]:
    """The critic records of ``merge`` (none without one), their paths made relative to OUT's folder."""
    from ..manifest import read_json_list

    if not merge:
        return []
    folder = Path(merge).parent
    return [{**r, **{k: _rebase(r[k], folder, out) for k in ("source_video_path", "candidate_video_path",
                                                              "rival_video_path") if k in r}}
            for r in read_json_list(Path(merge), "critic data")]


def cmd_synth_label(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from ..atomic import write_text
    from ..synth.critic_data import judged_records

    if not 1.0 <= args.no_at < args.yes_at <= 10.0:
        raise ReviseInputError(f"need 1 <= --no-at < --yes-at <= 10, got {args.no_at} and {args.yes_at}")
    out = Path(args.out)
    split, [(rows, clips)] = _judged_edits(Path(args.data), [(args.videos, args.scores)], out)
    records = judged_records(split, rows, clips, yes_at=args.yes_at, no_at=args.no_at)
    merged = _merged(args.merge, out)
    write_text(out, json.dumps(merged + records))
    answers = Counter((r["dimension"] or "overall", r["answer"]) for r in records)
    asked = sorted({d for d, _ in answers})
    print(f"{len(records)} questions on {len(clips)} generated clips"
          + (f" after {len(merged)} merged ones" if merged else "") + f" -> {out}")
    for d in asked:
        print(f"  {d}: Yes {answers[(d, 'Yes')]}, No {answers[(d, 'No')]}")
    return 0


def cmd_synth_pairs(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from ..atomic import write_text
    from ..synth.critic_data import judged_pairs

    if len(args.videos) != len(args.scores) or len(args.videos) < 2:
        raise ReviseInputError(f"need two or more --videos folders and one --scores file each, got "
                               f"{len(args.videos)} and {len(args.scores)}")
    if not 0 < args.min_gap <= 9:
        raise ReviseInputError(f"--min-gap must be above 0 and at most 9, got {args.min_gap}")
    out = Path(args.out)
    split, edits = _judged_edits(Path(args.data), list(zip(args.videos, args.scores)), out)
    records = judged_pairs(split, [rows for rows, _ in edits], [clips for _, clips in edits], min_gap=args.min_gap)
    merged = _merged(args.merge, out)
    write_text(out, json.dumps(merged + records))
    asked = Counter(r["dimension"] or "overall" for r in records)
    print(f"{len(records)} preference pairs from {len(edits)} edits of each item"
          + (f" after {len(merged)} merged records" if merged else "") + f" -> {out}")
    for d in sorted(asked):
        print(f"  {d}: {asked[d]} pairs")
    return 0


def cmd_synth_critic(args: argparse.Namespace) -> int:
    import json

    from ..models.revise_model import ReviseModel
    from ..pipelines.sampling_options import resolve_device
    from ..synth.run import critic_report

    device, dtype = resolve_device(args.device, None)
    _quiet_libraries()
    model = ReviseModel.load(args.model, device=device, dtype=dtype)
    report = critic_report(model, args.data, batch_size=args.batch)
    print("| question or kind | n | Yes | accuracy | balanced accuracy | mean P(Yes) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, r in report.items():
        if "accuracy" in r:
            print(f"| {k} | {r['n']} | {r['yes']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['mean_p_yes']:.3f} |")
    rank = report["target_ranked_above_negative"]
    print(f"target ranked above a negative of its item: {rank['rate']:.3f} of {rank['n']} pairs")
    if args.out:
        from ..atomic import write_text
        write_text(args.out, json.dumps(report, indent=1))
    return 0
