#!/usr/bin/env bash
# RVE-Synth v2's instruction-blind floors (docs/results.md, "RVE-Synth v2"): a model's edits with its own
# instruction, with a neutral one ("Do something.") and with another item's instruction on the same source,
# scored by the exact judge beside the unedited source; and the same for two SFT runs continued from the
# shipped model on v2 for the same time: one with the items' instructions, one with every instruction
# replaced by the neutral one (a model that cannot read the instruction).
#
#   STAGES="data shipped" bash scripts/v2_floors.sh          # the shipped model's floors on v2
#   STAGES="sft blind floors" TIME_LIMIT=180 EVAL_SPLITS=test bash scripts/v2_floors.sh
#   STAGES="data vae sft blind floors" ...                   # first the autoencoder on v2's scenes
#   STAGES="... select pack"   # the shipping rule on val for the SFT arm; its float16 copy to $RUNS/sft_fp16.tgz
#   STAGES="data vocab vae sft blind floors"   # first the shipped model's word vocabulary grown to v2's words
# The vocab stage (docs/results.md, "every v2 arm reads v2 with v1's words") writes $RUNS/vocab/model,
# the shipped model with the mini preset's words added (scripts/grow_vocabulary.py); the later stages
# start from it.
# The vae stage (docs/results.md, "The mini VAE cannot draw v2's dusk scenes") continues the shipped
# model's autoencoder on v2 train clips, single frames for VAE_FRAMES_TIME s then whole clips for
# VAE_CLIPS_TIME s, training VAE_MODULES (vae_decoder: the decoder alone, so that the shipped DiT's
# latents stay valid; vae: all of it, latent statistics measured anew); the arms then start from it.
set -euo pipefail
N_TRAIN=${N_TRAIN:-24000}; N_VAL=${N_VAL:-150}; N_TEST=${N_TEST:-300}
WORKERS=${WORKERS:-16}; TIME_LIMIT=${TIME_LIMIT:-180}; BATCH=${BATCH:-128}
# continuing a trained model: 2_sft.yaml's lr 5e-4 from a fresh optimizer broke the shipped model's
# pictures in 80 s (docs/results.md, "RVE-Synth v2"), so the arms continue at stage 3's lr by default
LR=${LR:-1.0e-4}; WARMUP=${WARMUP:-20}
VAE_MODULES=${VAE_MODULES:-vae_decoder}; VAE_FRAMES_TIME=${VAE_FRAMES_TIME:-60}; VAE_CLIPS_TIME=${VAE_CLIPS_TIME:-120}
VAE_FRAME_BATCH=${VAE_FRAME_BATCH:-512}; VAE_CLIP_BATCH=${VAE_CLIP_BATCH:-64}
STAGES=${STAGES:-"data shipped sft blind floors"}; EVAL_SPLITS=${EVAL_SPLITS:-"test val"}
FLOOR_ARMS=${FLOOR_ARMS:-"vae sft blind"}
DATA=${DATA:-data/v2}; RUNS=${RUNS:-runs/v2}; SHIPPED=${SHIPPED:-revise/assets/models/mini}
REVISE=${REVISE:-revise}
has() { [[ " $STAGES " == *" $1 "* ]]; }
stamp() { echo "[$(date +%T)] $*"; }

floors() {  # floors NAME MODEL SPLIT: edits with each instruction mode, scored beside the source
    stamp "floors of $1 on $3"
    $REVISE synth eval --model "$2" --data "$DATA/$3/$3.json" --out "$RUNS/floors_$1_$3" \
        --instructions own neutral other --batch "$BATCH" --workers "$WORKERS"
}

sft() {  # sft NAME TRAIN_JSON: configs/mini/2_sft.yaml continued from BASE for TIME_LIMIT s
    mkdir -p "$RUNS/$1"
    sed -e "s#data/mini/train.json#$2#" -e "s#^out: .*#out: $RUNS/$1#" -e "s#runs/mini/cache#$RUNS/$1/cache#" \
        -e "s#^lr: .*#lr: $LR#" -e "s#^warmup_steps: .*#warmup_steps: $WARMUP#" \
        configs/mini/2_sft.yaml > "$RUNS/$1/config.yaml"
    stamp "train $1 on $2"
    $REVISE train --config "$RUNS/$1/config.yaml" --model "$BASE" --time-limit "$TIME_LIMIT" --no-resume
}

vae() {  # vae NAME CONFIG FROM TIME BATCH: a configs/mini/0_vae*.yaml stage on v2 from model FROM
    mkdir -p "$RUNS/$1"
    sed -e "s#^model: .*#model: $3#" -e "s#^data: .*#data: $DATA/train/train.json#" -e "s#^out: .*#out: $RUNS/$1#" \
        -e "s#^train_modules: .*#train_modules: [$VAE_MODULES]#" -e "s#^lr: .*#lr: 3.0e-4#" \
        -e "s#^batch_size: .*#batch_size: $5#" "configs/mini/$2.yaml" \
        > "$RUNS/$1/config.yaml"
    stamp "train $1 ($VAE_MODULES)"
    $REVISE train --config "$RUNS/$1/config.yaml" --time-limit "$4" --no-resume
}

mkdir -p "$RUNS"
if has data; then
    stamp "data"
    for split in train val test; do
        n=N_${split^^}
        $REVISE synth make --format npy --workers "$WORKERS" --n "${!n}" --split "$split" --seed 0 --out "$DATA/$split"
    done
    ${PYTHON:-python3} -c "
import json, sys
from revise.synth.floors import with_instructions
recs = json.load(open('$DATA/train/train.json'))
json.dump(with_instructions(recs, 'neutral'), open('$DATA/train/train_neutral.json', 'w'))"
fi
START=$SHIPPED                       # what the v2 stages continue: the shipped model, its vocabulary grown
if has vocab; then
    stamp "vocab"
    ${PYTHON:-python3} scripts/grow_vocabulary.py "$SHIPPED" "$RUNS/vocab/model"
fi
[ -d "$RUNS/vocab/model" ] && START=$RUNS/vocab/model
if has vae; then
    vae vae_frames 0_vae_frames "$START" "$VAE_FRAMES_TIME" "$VAE_FRAME_BATCH"
    vae vae 0_vae "$RUNS/vae_frames/model" "$VAE_CLIPS_TIME" "$VAE_CLIP_BATCH"
fi
BASE=$START                          # the arms start from the model with the v2 autoencoder, once there is one
[ -d "$RUNS/vae/model" ] && BASE=$RUNS/vae/model
if has shipped; then for split in $EVAL_SPLITS; do floors shipped "$SHIPPED" "$split"; done; fi
has sft && sft sft "$DATA/train/train.json"
has blind && sft blind "$DATA/train/train_neutral.json"
if has floors; then
    for name in $FLOOR_ARMS; do       # vae: the shipped DiT with the v2 autoencoder
        [ -d "$RUNS/$name/model" ] || continue
        for split in $EVAL_SPLITS; do floors "$name" "$RUNS/$name/model" "$split"; done
    done
fi
# val_own NAME MODEL: edits of val with the own instructions, scored, in select_NAME/ (not eval_NAME/, where
# v2_reflect.sh's stage-3 arm 'sft' evaluates: generation resumes from the clips it finds there)
val_own() {
    $REVISE synth eval --model "$2" --data "$DATA/val/val.json" --out "$RUNS/select_$1/val" --batch "$BATCH" \
        --workers "$WORKERS"
}
if has select; then                  # the pre-set shipping rule (scripts/select_arm.py) for the SFT arm
    stamp "select"
    val_own shipped "$SHIPPED"
    val_own sft "$RUNS/sft/model"
    ${PYTHON:-python3} scripts/select_arm.py --shipped "$RUNS/select_shipped/val/scores.json" \
        --arms "sft=$RUNS/select_sft/val/scores.json" --models "$RUNS" --prefix "" --pack "$RUNS/winner.tgz" \
        --json "$RUNS/select.json"
fi
if has pack; then                    # the SFT arm's float16 copy, to carry into a later session's v2_reflect.sh
    rm -rf "$RUNS/sft_fp16" && ${PYTHON:-python3} scripts/ship_model.py "$RUNS/sft/model" "$RUNS/sft_fp16"
    tar -czf "$RUNS/sft_fp16.tgz" -C "$RUNS" sft_fp16
fi
stamp "done (v2_floors)"
