#!/usr/bin/env bash
# Issue #22 on RVE-Synth v2 (docs/results.md, "Self-reflection on v2"), after scripts/v2_floors.sh has
# trained the v2 SFT model ($RUNS/sft/model, or SFT=FOLDER: e.g. its float16 copy from the pack stage) on $DATA:
#   onpolicy  the SFT model edits N_ONPOLICY train items (seed 1 split) K_ONPOLICY times; the exact judge
#             labels them ('synth label'), merged after the split's own critic data (exact targets, near
#             misses), and every two edits of an item K_GAP or more judge points apart make a preference
#             pair ('synth pairs', after the judged edits' Yes/No records alone)
#   critic    from the SFT model's critic, for T_CRITIC s each (its VLM only): critic B on the Yes/No labels
#             and the split's made critic data (objective critic), critic C on the judged edits' labels and
#             the pairs (objective critic_pairwise)
#   agree     the gate: each critic's pair agreement with the judge on the SFT model's candidates
#             (val, SEEDS seeds), and its P(Yes) on held-out negatives (benchmarks/critic_agreement.py)
#   stage3    from the SFT model, S3_STEPS steps each, the same rows per step: SFT continued; group RWO
#             rewarded by the edit-accuracy question of the model's own critic (A), of critic B or C
#             (critic_model), by the exact judge's EA (oracle), or by it blurred with Gaussian noise of
#             S judge points (judge_nS, e.g. judge_n1.5: a critic of chosen quality for the curve of gain
#             against agreement); every arm logs its reward's pair agreement with the judge on its own
#             candidates (the critic arms every AGREE_EVERY-th step: agree_pairs, agree_hits)
#   eval      each arm on test (own and another item's instruction: EA, sensitivity) and val (own);
#             with stage3, each arm is evaluated right after it trains (a run cut short keeps whole arms)
#   select    the pre-set rule (docs/results.md): the arm with the highest val EA replaces the shipped
#             model only if its val EA beats the shipped model's with the paired 95% interval above 0;
#             its folder is then packed into $RUNS/winner.tgz
set -euo pipefail
N_ONPOLICY=${N_ONPOLICY:-1500}; K_ONPOLICY=${K_ONPOLICY:-3}; K_GAP=${K_GAP:-1.0}; SEEDS=${SEEDS:-4}; T_CRITIC=${T_CRITIC:-120}; S3_STEPS=${S3_STEPS:-200}
S3_TIME=${S3_TIME:-240}; WORKERS=${WORKERS:-16}; BATCH=${BATCH:-128}
CRITIC_BATCH=${CRITIC_BATCH:-128}; PRECISION=${PRECISION:-bf16}   # on a CPU: CRITIC_BATCH=32 PRECISION=no (critics, stage 3)
STAGES=${STAGES:-"onpolicy critic agree stage3 eval select"}; ARMS=${ARMS:-"sft oracle judge_n1.5 rwo_a rwo_c"}
DATA=${DATA:-data/v2}; RUNS=${RUNS:-runs/v2}; SHIPPED=${SHIPPED:-revise/assets/models/mini}
REVISE=${REVISE:-revise}; PY=${PYTHON:-python3}
AGREE_EVERY=${AGREE_EVERY:-4}
SFT=${SFT:-$RUNS/sft/model}; CRITIC_B=$RUNS/critic_b/model; CRITIC_C=$RUNS/critic_c/model
has() { [[ " $STAGES " == *" $1 "* ]]; }
stamp() { echo "[$(date +%T)] $*"; }

if has onpolicy; then
    stamp "on-policy critic data"
    $REVISE synth make --format npy --workers "$WORKERS" --n "$N_ONPOLICY" --split train --seed 1 --critic \
        --out "$DATA/critic"
    merged=$DATA/critic/train_critic.json
    videos=(); scores=(); judged=""
    for k in $(seq 0 $((K_ONPOLICY - 1))); do
        $REVISE synth generate --model "$SFT" --data "$DATA/critic/train.json" --out "$RUNS/onpolicy/seed$k" \
            --format npy --batch "$BATCH" --seed "$k"
        $REVISE synth score --data "$DATA/critic/train.json" --videos "$RUNS/onpolicy/seed$k" --workers "$WORKERS" \
            --out "$RUNS/onpolicy/scores$k.json" > "$RUNS/onpolicy/scores$k.txt"
        $REVISE synth label --data "$DATA/critic/train.json" --videos "$RUNS/onpolicy/seed$k" \
            --scores "$RUNS/onpolicy/scores$k.json" --merge "$merged" --out "$RUNS/onpolicy/critic$k.json"
        $REVISE synth label --data "$DATA/critic/train.json" --videos "$RUNS/onpolicy/seed$k" \
            --scores "$RUNS/onpolicy/scores$k.json" ${judged:+--merge "$judged"} --out "$RUNS/onpolicy/judged$k.json"
        merged=$RUNS/onpolicy/critic$k.json; judged=$RUNS/onpolicy/judged$k.json
        videos+=("$RUNS/onpolicy/seed$k"); scores+=("$RUNS/onpolicy/scores$k.json")
    done
    # critic C: the generator's judged edits only (no made negatives), so that the pairs are a fifth of
    # its records rather than a twentieth; it starts from critic A, which learnt the made ones
    $REVISE synth pairs --data "$DATA/critic/train.json" --videos "${videos[@]}" --scores "${scores[@]}" \
        --min-gap "$K_GAP" --merge "$judged" --out "$RUNS/onpolicy/pairs.json"
    cp "$merged" "$RUNS/onpolicy/labels.json"
    $REVISE synth make --format npy --workers "$WORKERS" --n 100 --split test --seed 1 --critic --out "$DATA/critic_test"
fi

critic() {  # critic NAME DATA OBJECTIVE: the SFT model's critic continued on DATA for T_CRITIC s
    mkdir -p "$RUNS/$1"
    sed -e "s#^model: .*#model: $SFT#" -e "s#^data: .*#data: $2#" -e "s#^objective: .*#objective: $3#" \
        -e "s#^out: .*#out: $RUNS/$1#" -e "s#^lr: .*#lr: 2.0e-4#" -e "s#^warmup_steps: .*#warmup_steps: 20#" \
        -e "s#^batch_size: .*#batch_size: $CRITIC_BATCH#" -e "s#^mixed_precision: .*#mixed_precision: \"$PRECISION\"#" \
        configs/mini/1_critic.yaml > "$RUNS/$1/config.yaml"
    $REVISE train --config "$RUNS/$1/config.yaml" --time-limit "$T_CRITIC" --no-resume
}

if has critic; then
    stamp "critic B"
    critic critic_b "$RUNS/onpolicy/labels.json" critic
    stamp "critic C"
    critic critic_c "$RUNS/onpolicy/pairs.json" critic_pairwise
fi

if has agree; then
    stamp "critic agreement"
    $PY benchmarks/critic_agreement.py --model "$SFT" --data "$DATA/val/val.json" --critics "$SFT" "$CRITIC_B" "$CRITIC_C" \
        --seeds "$SEEDS" --negatives "$DATA/critic_test/test_critic.json" --batch "$BATCH" --workers "$WORKERS" \
        --work "$RUNS/agreement" --json "$RUNS/agreement.json"
fi

arm_config() {  # arm_config ARM: the stage-3 config of an arm, from the mini configs
    local base extra=""
    local reward="  reward: critic\n  question: edit_accuracy\n  agreement_every: $AGREE_EVERY\n  judge_workers: $WORKERS"
    case $1 in
        sft) base=3_sft ;;
        rwo_a) base=3_rwo_group ;;
        rwo_b) base=3_rwo_group; extra="critic_model: $CRITIC_B" ;;
        rwo_c) base=3_rwo_group; extra="critic_model: $CRITIC_C" ;;
        oracle) base=3_rwo_oracle; reward="  reward: judge" ;;
        judge_n*) base=3_rwo_oracle; reward="  reward: judge\n  reward_noise: ${1#judge_n}" ;;
        *) echo "unknown arm $1" >&2; return 1 ;;
    esac
    sed -e "s#^model: .*#model: $SFT#" -e "s#data/mini/train.json#$DATA/train/train.json#" \
        -e "s#runs/mini/cache#$RUNS/cache3#" -e "s#^out: .*#out: $RUNS/s3_$1#" \
        -e "s#judge_workers: .*#judge_workers: $WORKERS#" -e "s#^mixed_precision: .*#mixed_precision: \"$PRECISION\"#" \
        -e "s/^  reward: .*/$reward/" "configs/mini/$base.yaml"
    [ -n "$extra" ] && echo "$extra"
    return 0
}

train_arm() {  # train_arm ARM: stage 3 from the SFT model
    stamp "stage 3: $1"
    mkdir -p "$RUNS/s3_$1"
    arm_config "$1" > "$RUNS/s3_$1/config.yaml"
    $REVISE train --config "$RUNS/s3_$1/config.yaml" --steps "$S3_STEPS" --time-limit "$S3_TIME" --no-resume
}

eval_arm() {  # eval_arm ARM: test (own and another item's instruction: EA, sensitivity) and val (own)
    stamp "eval $1"
    $REVISE synth eval --model "$RUNS/s3_$1/model" --data "$DATA/test/test.json" --out "$RUNS/eval_$1/test" \
        --instructions own other --batch "$BATCH" --workers "$WORKERS"
    $REVISE synth eval --model "$RUNS/s3_$1/model" --data "$DATA/val/val.json" --out "$RUNS/eval_$1/val" \
        --batch "$BATCH" --workers "$WORKERS"
}

for arm in $ARMS; do arm_config "$arm" > /dev/null; done      # an unknown arm fails before anything runs
if has eval; then
    stamp "eval shipped (val)"
    $REVISE synth eval --model "$SHIPPED" --data "$DATA/val/val.json" --out "$RUNS/eval_shipped/val" \
        --batch "$BATCH" --workers "$WORKERS"
fi
for arm in $ARMS; do
    has stage3 && train_arm "$arm"
    has eval && eval_arm "$arm"
done

if has select; then
    stamp "select"
    $PY scripts/select_arm.py --shipped "$RUNS/eval_shipped/val/scores.json" \
        --arms $(for a in $ARMS; do echo "$a=$RUNS/eval_$a/val/scores.json"; done) --json "$RUNS/select.json" \
        --pack "$RUNS/winner.tgz" --models "$RUNS"
fi
stamp "done (v2_reflect)"
