#!/usr/bin/env bash
# Trains the embedded default model (the `mini` preset) on RVE-Synth and evaluates the ablation
# (docs/results.md). Run from the repo root with revise installed. Every stage is a plain `revise`
# command; STAGES picks which run:
#
#   data    RVE-Synth splits (.npy clips, or FORMAT=mp4)
#   base    stage 0 (VAE: frames, then clips), then stage 1 (critic, from the preset: it reads
#           pixels only); 1_base = the critic's folder with the trained VAE
#   judged  critic data from a generator's own edits: JUDGE_FROM (default: the shipped model) edits
#           the critic items, the exact judge scores the edits, and `revise synth label` writes
#           $DATA/mini-critic/train_critic_judged.json (the made critic data, then these); with
#           X0_SIGMAS (e.g. "0.3 0.6") also its one-step x0 estimates at those noise levels, the clips
#           RWO and USO show the critic; run the critic stage with CRITIC_DATA set to that file
#   critic  stage 1 alone: from the preset, or continued from CRITIC_FROM (a model folder), on the
#           config's critic data or CRITIC_DATA; then
#           1_base = BASE_FROM (default: the shipped model) with the new critic's VLM in it, so that
#           stage 2 re-fits that generator to the new VLM
#   sft     stage 2 (SFT_FROM: start from this folder instead of 1_base, to continue a run)
#   stage3  USO first, capped in time; then RWO and SFT continued for the same number of steps
#   eval    scripts/eval_mini.py
#
#   scripts/train_mini.sh                          # everything
#   STAGES="eval" scripts/train_mini.sh            # only the evaluation of models already trained
#
# Sizes can be scaled down for a smoke run: N_TRAIN, N_CRITIC, N_TEST, N_VAL, STEP_SCALE (multiplies
# every stage's steps), TIME_LIMIT (seconds per training stage, overriding the configs' time_limit_s),
# BATCH (every stage's batch size), WORKERS.
set -euo pipefail
N_TRAIN=${N_TRAIN:-8000}; N_CRITIC=${N_CRITIC:-2000}; N_TEST=${N_TEST:-200}; N_VAL=${N_VAL:-100}
WORKERS=${WORKERS:-16}; STEP_SCALE=${STEP_SCALE:-1}; TIME_LIMIT=${TIME_LIMIT:-}; FORMAT=${FORMAT:-npy}
BATCH=${BATCH:-}
STAGES=${STAGES:-"data base sft stage3 eval"}
RUNS=${RUNS:-runs/mini}; DATA=${DATA:-data}
REVISE=${REVISE:-revise}
has() { [[ " $STAGES " == *" $1 "* ]]; }
stamp() { echo "[$(date +%T)] $*"; }

train() {  # train CONFIG [revise train options]: steps scaled, time-limited, data and runs paths rewritten
    local cfg=$1 steps; shift
    steps=$(python3 -c "import yaml; print(max(1, int(yaml.safe_load(open('$cfg'))['steps'] * $STEP_SCALE)))")
    local batch=(); [ -n "$BATCH" ] && batch=(-e "s#^batch_size:.*#batch_size: $BATCH#")
    local data=(); [ -n "${DATA_FILE:-}" ] && data=(-e "s#^data:.*#data: $DATA_FILE#")
    sed -e "s#data/mini#$DATA/mini#" -e "s#runs/mini#$RUNS#g" "${batch[@]}" "${data[@]}" "$cfg" > "$RUNS/$(basename "$cfg")"
    local limit=(); [ -n "$TIME_LIMIT" ] && limit=(--time-limit "$TIME_LIMIT")
    stamp "train $cfg $*"
    $REVISE train --config "$RUNS/$(basename "$cfg")" --steps "$steps" "${limit[@]}" --no-resume "$@"
}
last_step() { python3 -c "import json; print(json.loads(open('$1/metrics.jsonl').read().splitlines()[-1])['step'])"; }

mkdir -p "$RUNS"
if has data; then
    stamp "data"
    make() { $REVISE synth make --format "$FORMAT" --workers "$WORKERS" "$@"; }
    make --n "$N_TRAIN" --split train --seed 0 --out "$DATA/mini"
    [ "$N_CRITIC" -gt 0 ] && make --n "$N_CRITIC" --split train --seed 1 --out "$DATA/mini-critic" --critic
    make --n "$N_VAL" --split val --seed 0 --out "$DATA/mini-val"
    make --n "$N_TEST" --split test --seed 0 --out "$DATA/mini-test" --critic
fi
if has base; then
    # one after the other: two trainings side by side on one GPU time-slice it (docs/results.md)
    train configs/mini/0_vae_frames.yaml
    train configs/mini/0_vae.yaml
    train configs/mini/1_critic.yaml
    # a model folder is a set of independent parts: the critic's folder with the trained VAE in it
    rm -rf "$RUNS/1_base"; mkdir -p "$RUNS/1_base"
    cp -r "$RUNS/1_critic/model" "$RUNS/1_base/model"
    rm -rf "$RUNS/1_base/model/vae"; cp -r "$RUNS/0_vae/model/vae" "$RUNS/1_base/model/vae"
fi
if has judged; then
    crit=$DATA/mini-critic
    stamp "judged edits of the critic items by ${JUDGE_FROM:-revise/assets/models/mini}"
    $REVISE synth generate --model "${JUDGE_FROM:-revise/assets/models/mini}" --data "$crit/train.json" \
        --out "$crit/generated" --format "$FORMAT" --batch "${BATCH:-128}"
    $REVISE synth score --data "$crit/train.json" --videos "$crit/generated" --out "$crit/generated_scores.json" \
        --workers "$WORKERS"
    $REVISE synth label --data "$crit/train.json" --videos "$crit/generated" --scores "$crit/generated_scores.json" \
        --merge "$crit/train_critic.json" --out "$crit/train_critic_judged.json"
    for s in ${X0_SIGMAS:-}; do     # the one-step x0 estimates RWO and USO show the critic, judged too
        $REVISE synth generate --model "${JUDGE_FROM:-revise/assets/models/mini}" --data "$crit/train.json" \
            --out "$crit/x0_$s" --format "$FORMAT" --batch "${BATCH:-128}" --x0-sigma "$s"
        $REVISE synth score --data "$crit/train.json" --videos "$crit/x0_$s" --out "$crit/x0_${s}_scores.json" \
            --workers "$WORKERS"
        $REVISE synth label --data "$crit/train.json" --videos "$crit/x0_$s" --scores "$crit/x0_${s}_scores.json" \
            --merge "$crit/train_critic_judged.json" --out "$crit/train_critic_judged_x0.json"
        mv "$crit/train_critic_judged_x0.json" "$crit/train_critic_judged.json"
    done
fi
if has critic; then
    from=(); [ -n "${CRITIC_FROM:-}" ] && from=(--model "$CRITIC_FROM")
    DATA_FILE=${CRITIC_DATA:-} train configs/mini/1_critic.yaml "${from[@]}"
    rm -rf "$RUNS/1_base"; mkdir -p "$RUNS/1_base"
    cp -r "${BASE_FROM:-revise/assets/models/mini}" "$RUNS/1_base/model"
    rm -rf "$RUNS/1_base/model/understanding"
    cp -r "$RUNS/1_critic/model/understanding" "$RUNS/1_base/model/understanding"
fi
if has sft; then
    from=(); [ -n "${SFT_FROM:-}" ] && from=(--model "$SFT_FROM")
    train configs/mini/2_sft.yaml "${from[@]}"
fi
if has stage3; then
    train configs/mini/3_uso.yaml
    n=$(last_step "$RUNS/3_uso")
    stamp "USO reached step $n: RWO and SFT run as many"
    train configs/mini/3_rwo.yaml --steps "$n" --time-limit 0
    train configs/mini/3_sft.yaml --steps "$n" --time-limit 0
fi
if has eval; then
    stamp "eval"
    python3 scripts/eval_mini.py --runs "$RUNS" --data "$DATA" --workers "$WORKERS" --format "$FORMAT" \
        --models ${EVAL_MODELS:-2_sft 3_sft 3_rwo 3_uso}
fi
stamp "done"
