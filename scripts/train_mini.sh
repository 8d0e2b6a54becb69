#!/usr/bin/env bash
# Trains the embedded default model (the `mini` preset) on RVE-Synth and evaluates the ablation
# (docs/results.md). Run from the repo root with revise installed; on one H100 the whole run takes
# about 10 minutes. Every stage is a plain `revise` command; STAGES picks which run.
#
#   scripts/train_mini.sh                      # everything
#   STAGES="eval" scripts/train_mini.sh        # only the evaluation of models already trained
#
# Sizes can be scaled down for a smoke run: N_TRAIN, N_CRITIC, N_TEST, N_VAL, STEP_SCALE (multiplies
# every stage's steps), TIME_LIMIT (seconds per training stage, overriding the configs' time_limit_s),
# WORKERS, DEVICE.
set -euo pipefail
N_TRAIN=${N_TRAIN:-8000}; N_CRITIC=${N_CRITIC:-2000}; N_TEST=${N_TEST:-200}; N_VAL=${N_VAL:-100}
WORKERS=${WORKERS:-16}; STEP_SCALE=${STEP_SCALE:-1}; TIME_LIMIT=${TIME_LIMIT:-}; DEVICE=${DEVICE:-}
STAGES=${STAGES:-"data vae critic sft stage3 eval"}
RUNS=${RUNS:-runs/mini}; DATA=${DATA:-data}
REVISE=${REVISE:-revise}
dev=(); [ -n "$DEVICE" ] && dev=(--device "$DEVICE")
has() { [[ " $STAGES " == *" $1 "* ]]; }
stamp() { echo "[$(date +%T)] $*"; }

train() {  # train CONFIG [extra overrides]: steps scaled, time-limited, data and runs paths rewritten
    local cfg=$1 steps
    steps=$(python3 -c "import yaml,sys; print(max(1, int(yaml.safe_load(open('$cfg'))['steps'] * $STEP_SCALE)))")
    sed -e "s#data/mini#$DATA/mini#" -e "s#runs/mini#$RUNS#g" "$cfg" > "$RUNS/$(basename "$cfg")"
    stamp "train $cfg ($steps steps)"
    local limit=(); [ -n "$TIME_LIMIT" ] && limit=(--time-limit "$TIME_LIMIT")
    $REVISE train --config "$RUNS/$(basename "$cfg")" --steps "$steps" "${limit[@]}" --no-resume
}

mkdir -p "$RUNS"
if has data; then
    stamp "data"
    $REVISE synth make --n "$N_TRAIN" --split train --seed 0 --out "$DATA/mini" --workers "$WORKERS"
    [ "$N_CRITIC" -gt 0 ] && $REVISE synth make --n "$N_CRITIC" --split train --seed 1 --out "$DATA/mini-critic" --critic --workers "$WORKERS"
    $REVISE synth make --n "$N_VAL" --split val --seed 0 --out "$DATA/mini-val" --workers "$WORKERS"
    $REVISE synth make --n "$N_TEST" --split test --seed 0 --out "$DATA/mini-test" --critic --workers "$WORKERS"
fi
has vae && train configs/mini/0_vae.yaml
has critic && train configs/mini/1_critic.yaml
has sft && train configs/mini/2_sft.yaml
if has stage3; then
    for s in ${STAGE3:-sft rwo uso}; do train "configs/mini/3_$s.yaml"; done
fi
if has eval; then
    stamp "eval"
    python3 scripts/eval_mini.py --runs "$RUNS" --data "$DATA" --workers "$WORKERS" --models ${EVAL_MODELS:-2_sft 3_sft 3_rwo 3_uso}
fi
stamp "done"
