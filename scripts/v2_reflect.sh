#!/usr/bin/env bash
# Issue #22 on RVE-Synth v2 (docs/results.md, "Self-reflection on v2"), after scripts/v2_floors.sh has
# trained the v2 SFT model ($RUNS/sft/model) on $DATA:
#   onpolicy  the SFT model edits N_ONPOLICY train items (seed 1 split) twice; the exact judge labels
#             them ('synth label'), merged after the split's own critic data (exact targets, near misses)
#   critic    critic B: the SFT model's critic continued on those labels for T_CRITIC s (its VLM only)
#   agree     the gate: each critic's pair agreement with the judge on the SFT model's candidates
#             (val, SEEDS seeds), and its P(Yes) on held-out negatives (benchmarks/critic_agreement.py)
#   stage3    from the SFT model, S3_STEPS steps each, the same rows per step: SFT continued; group RWO
#             with the model's own critic (A); with critic B (critic_model); with the exact judge (oracle)
#   eval      each arm on test (own and another item's instruction: EA, sensitivity) and val (own)
#   select    the pre-set rule (docs/results.md): the arm with the highest val EA replaces the shipped
#             model only if its val EA beats the shipped model's with the paired 95% interval above 0;
#             its folder is then packed into $RUNS/winner.tgz
set -euo pipefail
N_ONPOLICY=${N_ONPOLICY:-1500}; SEEDS=${SEEDS:-4}; T_CRITIC=${T_CRITIC:-120}; S3_STEPS=${S3_STEPS:-200}
S3_TIME=${S3_TIME:-240}; WORKERS=${WORKERS:-16}; BATCH=${BATCH:-128}
STAGES=${STAGES:-"onpolicy critic agree stage3 eval select"}; ARMS=${ARMS:-"sft rwo_a rwo_b oracle"}
DATA=${DATA:-data/v2}; RUNS=${RUNS:-runs/v2}; SHIPPED=${SHIPPED:-revise/assets/models/mini}
REVISE=${REVISE:-revise}; PY=${PYTHON:-python3}
SFT=$RUNS/sft/model; CRITIC_B=$RUNS/critic_b/model
has() { [[ " $STAGES " == *" $1 "* ]]; }
stamp() { echo "[$(date +%T)] $*"; }

if has onpolicy; then
    stamp "on-policy critic data"
    $REVISE synth make --format npy --workers "$WORKERS" --n "$N_ONPOLICY" --split train --seed 1 --critic \
        --out "$DATA/critic"
    merged=$DATA/critic/train_critic.json
    for k in 0 1; do
        $REVISE synth generate --model "$SFT" --data "$DATA/critic/train.json" --out "$RUNS/onpolicy/seed$k" \
            --format npy --batch "$BATCH" --seed "$k"
        $REVISE synth score --data "$DATA/critic/train.json" --videos "$RUNS/onpolicy/seed$k" --workers "$WORKERS" \
            --out "$RUNS/onpolicy/scores$k.json" > /dev/null
        $REVISE synth label --data "$DATA/critic/train.json" --videos "$RUNS/onpolicy/seed$k" \
            --scores "$RUNS/onpolicy/scores$k.json" --merge "$merged" --out "$RUNS/onpolicy/critic$k.json"
        merged=$RUNS/onpolicy/critic$k.json
    done
    $REVISE synth make --format npy --workers "$WORKERS" --n 100 --split test --seed 1 --critic --out "$DATA/critic_test"
fi

if has critic; then
    stamp "critic B"
    mkdir -p "$RUNS/critic_b"
    sed -e "s#^model: .*#model: $SFT#" -e "s#^data: .*#data: $RUNS/onpolicy/critic1.json#" \
        -e "s#^out: .*#out: $RUNS/critic_b#" -e "s#^lr: .*#lr: 2.0e-4#" -e "s#^warmup_steps: .*#warmup_steps: 20#" \
        configs/mini/1_critic.yaml > "$RUNS/critic_b/config.yaml"
    $REVISE train --config "$RUNS/critic_b/config.yaml" --time-limit "$T_CRITIC" --no-resume
fi

if has agree; then
    stamp "critic agreement"
    $PY benchmarks/critic_agreement.py --model "$SFT" --data "$DATA/val/val.json" --critics "$SFT" "$CRITIC_B" \
        --seeds "$SEEDS" --negatives "$DATA/critic_test/test_critic.json" --batch "$BATCH" --workers "$WORKERS" \
        --work "$RUNS/agreement" --json "$RUNS/agreement.json"
fi

arm_config() {  # arm_config ARM: the stage-3 config of an arm, from the mini configs
    local base extra=""
    case $1 in
        sft) base=3_sft ;;
        rwo_a) base=3_rwo_group ;;
        rwo_b) base=3_rwo_group; extra="critic_model: $CRITIC_B" ;;
        oracle) base=3_rwo_oracle ;;
    esac
    sed -e "s#^model: .*#model: $SFT#" -e "s#data/mini/train.json#$DATA/train/train.json#" \
        -e "s#runs/mini/cache#$RUNS/cache3#" -e "s#^out: .*#out: $RUNS/s3_$1#" \
        -e "s#judge_workers: .*#judge_workers: $WORKERS#" "configs/mini/$base.yaml"
    [ -n "$extra" ] && echo "$extra"
    return 0
}

if has stage3; then
    for arm in $ARMS; do
        stamp "stage 3: $arm"
        mkdir -p "$RUNS/s3_$arm"
        arm_config "$arm" > "$RUNS/s3_$arm/config.yaml"
        $REVISE train --config "$RUNS/s3_$arm/config.yaml" --steps "$S3_STEPS" --time-limit "$S3_TIME" --no-resume
    done
fi

if has eval; then
    for arm in $ARMS; do
        stamp "eval $arm"
        out=$RUNS/eval_$arm
        for mode in own other; do
            $REVISE synth generate --model "$RUNS/s3_$arm/model" --data "$DATA/test/test.json" --out "$out/test_$mode" \
                --format npy --batch "$BATCH" --instructions "$mode"
        done
        $REVISE synth score --data "$DATA/test/test.json" --videos "$out/test_own" --other "$out/test_other" \
            --workers "$WORKERS" --out "$out/test_scores.json"
        $REVISE synth generate --model "$RUNS/s3_$arm/model" --data "$DATA/val/val.json" --out "$out/val_own" \
            --format npy --batch "$BATCH"
        $REVISE synth score --data "$DATA/val/val.json" --videos "$out/val_own" --workers "$WORKERS" \
            --out "$out/val_scores.json"
    done
    stamp "eval shipped (val)"
    $REVISE synth generate --model "$SHIPPED" --data "$DATA/val/val.json" --out "$RUNS/eval_shipped/val_own" \
        --format npy --batch "$BATCH"
    $REVISE synth score --data "$DATA/val/val.json" --videos "$RUNS/eval_shipped/val_own" --workers "$WORKERS" \
        --out "$RUNS/eval_shipped/val_scores.json"
fi

if has select; then
    stamp "select"
    $PY scripts/select_arm.py --shipped "$RUNS/eval_shipped/val_scores.json" \
        --arms $(for a in $ARMS; do echo "$a=$RUNS/eval_$a/val_scores.json"; done) --json "$RUNS/select.json" \
        --pack "$RUNS/winner.tgz" --models "$RUNS"
fi
stamp "done"
