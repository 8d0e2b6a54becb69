"""The tables of docs/results.md's v2 sections from what scripts/v2_floors.sh and scripts/v2_reflect.sh
wrote under RUNS (default runs/v2): the instruction-blind floors of each SFT arm, the critics' gate,
the stage-3 arms on test (EA with 95% intervals, paired differences against the SFT arm, instruction
sensitivity) and val, and #22's curve: each RWO arm's gain over the SFT arm against its reward's pair
agreement with the exact judge on its own training candidates (from its metrics.jsonl). Prints
Markdown; parts whose files are missing are left out.

    python scripts/v2_report.py runs/v2 > docs/results/v2/gpu_tables.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from revise.stats import bootstrap_interval, paired_difference, wilson_interval

ARMS = {"sft": "SFT continued", "rwo_a": "group RWO, critic A (shipped)", "rwo_b": "group RWO, critic B (on-policy Yes/No)",
        "rwo_c": "group RWO, critic C (on-policy pairs)", "oracle": "group RWO, exact judge (oracle)"}


def label(arm: str) -> str:
    """An arm's name in the tables (judge_nS: the judge blurred by noise of S points)."""
    return f"group RWO, exact judge + noise of {arm[len('judge_n'):]} points" if arm.startswith("judge_n") else ARMS.get(arm, arm)


def arm_names(runs: Path) -> list[str]:
    """The stage-3 arms run under ``runs`` (s3_* folders), the SFT arm first."""
    names = sorted(p.name[3:] for p in runs.glob("s3_*") if p.is_dir())
    return sorted(names, key=lambda a: (a != "sft", a))


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _ci(values: list[float]) -> str:
    lo, hi = bootstrap_interval(values)
    return f"[{lo:.2f}, {hi:.2f}]"


def floors(runs: Path) -> None:
    for name in ("shipped", "vae", "sft", "blind"):
        scores = _load(runs / f"floors_{name}_test" / "scores.json")
        if not scores or "floors" not in scores:
            continue
        rows = scores["floors"]["rows"]
        print(f"\n**{name}** (test, n={rows['own']['n']})\n\n| instruction | EA [95%] | Overall [95%] |\n| --- | --- | --- |")
        for mode in ("source", "neutral", "other", "own"):
            if mode in rows:
                r = rows[mode]
                ea, ov = r["interval95"]["EA"], r["interval95"]["overall"]
                print(f"| {mode} | {r['EA']:.2f} [{ea[0]:.2f}, {ea[1]:.2f}] | {r['overall']:.2f} [{ov[0]:.2f}, {ov[1]:.2f}] |")
        s = scores["floors"]["sensitivity"]
        print(f"\ninstruction sensitivity EA(own) - EA(other): {s['mean']:.2f} [{s['interval95'][0]:.2f}, "
              f"{s['interval95'][1]:.2f}] (n={s['n']})")
        cats = sorted({r["category"] for r in scores["items"]})
        by = {m: {c: [r["EA"] for r in its if r["category"] == c and not r.get("missing")]
                  for c in cats} for m, its in {**scores["floors"]["items"], "own": scores["items"]}.items()}
        print("\n| category | " + " | ".join(by) + " |\n| --- | " + " | ".join("---" for _ in by) + " |")
        for c in cats:
            print(f"| {c} | " + " | ".join(f"{sum(by[m][c]) / max(1, len(by[m][c])):.2f}" for m in by) + " |")


def agreement(runs: Path) -> None:
    report = _load(runs / "agreement.json")
    if not report:
        return
    print(f"\n**The gate** ({report['seeds']} candidates per item of {report['data']}, judge EA "
          f"{sum(map(sum, report['judge_ea'])) / sum(map(len, report['judge_ea'])):.2f})\n")
    print("| critic | question | pairs | agreement | P(Yes) on held-out negatives |\n| --- | --- | --- | --- | --- |")
    for name, r in report["critics"].items():
        neg = f"{r['negatives']['mean_p_yes']:.3f}" if "negatives" in r else ""
        for q, a in r["pair_agreement"].items():
            print(f"| {name} | {q} | {a['pairs']} | {a['rate']:.3f} | {neg} |")


def arms(runs: Path) -> None:
    test = {a: _load(runs / f"eval_{a}" / "test" / "scores.json") for a in arm_names(runs)}
    test = {a: s for a, s in test.items() if s}
    if not test:
        return
    base = test.get("sft")
    print("\n**Stage 3 on test** (own instruction; sensitivity = EA(own) - EA(other instruction, same source))\n")
    print("| arm | EA [95%] | Overall | EA - SFT arm, paired [95%] | sensitivity [95%] | val EA |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for a, s in test.items():
        own = [r["EA"] for r in s["items"] if not r.get("missing")]
        diff = "" if base is None or a == "sft" else (lambda d: f"{d['mean']:+.2f} [{d['interval95'][0]:+.2f}, "
                                                       f"{d['interval95'][1]:+.2f}]")(
            paired_difference(s["items"], base["items"]))
        sens = s.get("floors", {}).get("sensitivity")
        sens_s = f"{sens['mean']:.2f} [{sens['interval95'][0]:.2f}, {sens['interval95'][1]:.2f}]" if sens else ""
        val = _load(runs / f"eval_{a}" / "val" / "scores.json")
        val_s = f"{val['summary']['all']['EA']:.2f}" if val else ""
        print(f"| {label(a)} | {sum(own) / len(own):.2f} {_ci(own)} | {s['summary']['all']['overall']:.2f} | {diff} | "
              f"{sens_s} | {val_s} |")
    decision = _load(runs / "select.json")
    if decision:
        print(f"\nShipping rule: best val arm {decision['best']}, shipped val EA {decision['shipped_EA']:.2f}; "
              f"{'ships' if decision['ships'] else 'the shipped model stays'}.")


def metrics_rows(metrics: Path) -> list[dict]:
    """The rows of a training run's metrics.jsonl (none when it is missing)."""
    if not metrics.is_file():
        return []
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def weight_tilt(metrics: Path) -> dict | None:
    """How an RWO arm's weights lean on its candidates' flow-matching losses: per step, the weighted
    loss over the plain one, minus 1 (``loss / fm - 1``; the weights have mean 1 in each group, so this
    is their covariance with the per-candidate loss over the mean loss). Below 0: the weights favour
    candidates the model already predicts well. Mean over the steps with a bootstrap 95% interval, and
    in how many steps it was below 0."""
    tilt = [r["loss"] / r["fm"] - 1 for r in metrics_rows(metrics) if "fm" in r and "loss" in r and r["fm"] > 0]
    if not tilt:
        return None
    return {"mean": sum(tilt) / len(tilt), "interval95": bootstrap_interval(tilt), "below": sum(t < 0 for t in tilt),
            "steps": len(tilt)}


def training_agreement(metrics: Path) -> dict | None:
    """Pooled pair agreement of an arm's reward with the exact judge over the steps that measured it."""
    rows = metrics_rows(metrics)
    measured = [r for r in rows if "agree_pairs" in r]
    if not measured:
        return None
    pairs = int(sum(r["agree_pairs"] for r in measured))
    hits = int(sum(r["agree_hits"] for r in measured))
    return {"steps": len(rows), "measured": len(measured), "pairs": pairs, "hits": hits,
            "rate": hits / pairs if pairs else float("nan"), "interval95": wilson_interval(hits, pairs)}


def curve(runs: Path) -> None:
    base = _load(runs / "eval_sft" / "test" / "scores.json")
    rows = []
    for a in arm_names(runs):
        agree = training_agreement(runs / f"s3_{a}" / "metrics.jsonl")
        test = _load(runs / f"eval_{a}" / "test" / "scores.json")
        if agree is None or test is None or base is None:
            continue
        d = paired_difference(test["items"], base["items"])
        rows.append((agree["rate"], a, agree, d, weight_tilt(runs / f"s3_{a}" / "metrics.jsonl")))
    if not rows:
        return
    print("\n**Gain over SFT against the critic's agreement** (agreement: the reward orders two of one item's "
          "training candidates as the exact judge's EA does, pairs a point or more apart, pooled over the "
          "steps that measured it; gain: test EA minus the SFT arm's, paired; weight tilt: the weighted "
          "flow-matching loss over the plain one, minus 1, mean over steps: below 0, the weights favour the "
          "candidates the model already predicts well)\n")
    print("| arm | steps (measured) | pairs | agreement [Wilson 95%] | test EA gain over SFT [95%] | "
          "weight tilt [95%] | steps with tilt < 0 |\n| --- | --- | --- | --- | --- | --- | --- |")
    for rate, a, g, d, t in sorted(rows, key=lambda r: r[:2]):
        lo, hi = g["interval95"]
        tilt = (f"{t['mean']:+.3f} [{t['interval95'][0]:+.3f}, {t['interval95'][1]:+.3f}] | {t['below']}/{t['steps']}"
                if t else " | ")
        print(f"| {label(a)} | {g['steps']} ({g['measured']}) | {g['pairs']} | {rate:.3f} [{lo:.3f}, {hi:.3f}] | "
              f"{d['mean']:+.2f} [{d['interval95'][0]:+.2f}, {d['interval95'][1]:+.2f}] | {tilt} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default="runs/v2")
    runs = Path(ap.parse_args().runs)
    floors(runs)
    agreement(runs)
    arms(runs)
    curve(runs)


if __name__ == "__main__":
    main()
