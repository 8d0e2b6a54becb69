#!/usr/bin/env bash
# All of #24's numbers in one run on one GPU (about 6-8 minutes on an H100), at the released setting
# (17x352x640, 40 UniPC steps, the wan2.1-1.3b preset in bf16):
#   1. benchmarks/edit_latency.py: the resident eager edit; stage offload under a 24 GiB cap (every
#      stage moved; the components kept that fit a 20 GiB peak; the same with 8-bit VLM and T5
#      weights), with peak memory and time over the resident edit; the compiled fast path; FP8
#      linears on it; each row's velocity and final-latent error against the bf16 eager edit.
#   2. benchmarks/train_throughput.py: SFT steps with the DiT trained in full and through LoRA
#      adapters of rank 16 and 64 (step time, samples/s, peak memory, trainable parameters).
#   3. (fp8, about 11 minutes) FP8 and where its time goes: cuDNN's FP8 attention against its bf16
#      attention (benchmarks/fp8_attention.py); the bf16 fast path, + FP8 linears, + FP8 attention, +
#      fast accumulation, each profiled by kernel kind (edit_latency.py --fp8 --profile); each
#      block linear in bf16, as FP8 matmuls alone, quantization alone, Fp8Linear eager and compiled
#      (benchmarks/fp8_linear.py); the fastest FP8 loop under kernel-choice variants against the bf16
#      fast path (benchmarks/fp8_loop_variants.py).
#   4. (loop, about 6-7 minutes) the FP8 loop at its defaults (the kept CUDA graph, the 1-warp q/k
#      kernel, self-attention padded to whole tiles of 128, V's scale from a bound, the feed-forward's
#      GELU in cuBLASLt's epilogue: variant graph, run 9c's graph+pad+vbound+fepilogue) against the
#      same without the epilogue (graph+noepilogue; that row runs first, since the epilogue
#      requantizes the up-projections' weights for good), without it, V's bound and the padding
#      (graph+nopad+novbound+noepilogue, run 9c's graph), and with every cuDNN plan timed
#      (graph+autotune), beside the bf16 fast path with and without the graph, profiled over whole
#      loops (GPU-idle share, which kernels the memsets precede), each with the cost of capturing the
#      graph; power and clocks sampled by nvidia-smi; then the GPU tests of the graph, the FP8
#      kernels and the epilogue, the padding and the V bound. LOOP_VARIANTS and LOOP_TESTS replace
#      the rows and the tests (run 9c: LOOP_VARIANTS="graph graph+pad graph+pad+vbound
#      graph+pad+vbound+fepilogue" at commit fb500d4, when the three were off by default).
#   5. (attention, about 5 minutes) cuDNN's FP8 attention under every engine and KERNEL_CFG value at
#      the loop's layouts, each beside the heuristics' plan padded and not (benchmarks/fp8_attention_knobs.py,
#      capped at 240 s of trying; run 8a timed the other padded lengths: benchmarks/fp8_attention_lengths.py).
#   6. (workspace, about 4 minutes) the FP8 loop at the package's defaults without cuBLASLt's workspace
#      (CUBLASLT_WORKSPACE_SIZE=0: the statically scheduled kernels, no memset before each call) and
#      with it, one process each, since PyTorch reads that setting once a process (run 7b's A/B again).
#   7. (ffn, about 5-6 minutes) which FP8 matmuls with a bias or GELU epilogue cuBLASLt runs at the
#      up-projection's shape (benchmarks/fp8_epilogue_support.py; cuBLASLt's error log beside it); the
#      feed-forward's up-projection, GELU and e4m3 quantization five ways:
#      the Triton kernel of the loop without nvmath, and cuBLASLt's FP8 GELU_BIAS
#      epilogue writing e4m3 through nvmath-python at scales per tensor, per row and mixed
#      (benchmarks/fp8_ffn_epilogue.py; the versions of the CUDA Python packages nvmath needs are
#      printed first); the GPU test of the epilogue's op, and where it passes the loop at the defaults
#      (graph, with the epilogue) against the same without it (graph+noepilogue).
#   The kernels' launch settings: python3 benchmarks/fp8_kernel_configs.py.
# Logs and JSON rows go to $OUT (or ./outputs/issue24). Carried wheels (.whl/: diffusers, peft, ...)
# are installed first where the machine lacks them.
#   bash benchmarks/issue24.sh [all|edit|train|fp8|loop|attention|workspace|ffn ...]   # parts in order (default: all = edit and train)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-outputs/issue24}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'
status=0
for part in "${@:-all}"; do
[ "$part" = all ] || [ "$part" = edit ] && { python3 benchmarks/edit_latency.py --compile --fast-path-only --no-stock --offload --memory-cap-gib 24 \
    --offload-budget-gib 20 --fp8 --repeats 2 --json "$out/edit_latency_issue24.json" 2>&1 \
    | grep -v "it/s\]" | tee "$out/edit_latency_issue24.log" || status=1; }
[ "$part" = all ] || [ "$part" = train ] && { python3 benchmarks/train_throughput.py --objectives sft \
    --checkpointing on --lora-ranks 16 64 --steps 2 --json "$out/train_lora_issue24.json" 2>&1 \
    | tee "$out/train_lora_issue24.log" || status=1; }
[ "$part" = fp8 ] && { python3 benchmarks/fp8_attention.py --json "$out/fp8_attention_issue24.json" 2>&1 \
    | tee "$out/fp8_attention_issue24.log" || status=1;
    python3 benchmarks/edit_latency.py --compile --fast-path-only --no-stock --fp8 --profile --repeats 2 \
        --json "$out/edit_latency_fp8_issue24.json" 2>&1 \
    | grep -v "it/s\]" | tee "$out/edit_latency_fp8_profile_issue24.log" || status=1;
    python3 benchmarks/fp8_linear.py --json "$out/fp8_linear_issue24.json" 2>&1 \
    | tee "$out/fp8_linear_issue24.log" || status=1;
    python3 benchmarks/fp8_loop_variants.py 2>&1 | tee "$out/fp8_loop_variants_issue24.log" || status=1; }
[ "$part" = loop ] && { smi=""
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=timestamp,power.draw,clocks.sm,clocks_throttle_reasons.active,utilization.gpu \
            --format=csv -lms 250 > "$out/fp8_loop_issue24_smi.csv" 2>&1 & smi=$!
    fi
    git log -1 --format='commit %h %s' 2>/dev/null | tee "$out/fp8_loop_issue24.log"
    # LOOP_VARIANTS: the rows to time, profiled over whole loops (default below)
    python3 benchmarks/fp8_loop_variants.py ${LOOP_VARIANTS:-graph+nopad+novbound+noepilogue graph+noepilogue graph \
        graph+autotune} --repeats 3 --profile-steps 40 2>&1 \
        | tee -a "$out/fp8_loop_issue24.log" || status=1
    # LOOP_TESTS: the GPU tests to run after the loop (default: the graph's, the FP8 kernels', the norms')
    python3 -m pytest -q ${LOOP_TESTS:-tests/test_cuda_graph.py tests/test_fp8_ffn.py tests/test_fp8_attention.py \
        tests/test_norm_rope.py} 2>&1 | tee "$out/fp8_gpu_tests_issue24.log" || status=1
    [ -n "$smi" ] && kill "$smi"; }
[ "$part" = workspace ] && { git log -1 --format='commit %h %s' 2>/dev/null | tee "$out/fp8_loop_issue24_workspace.log"
    for ws in 0 default; do     # one process each: PyTorch reads CUBLASLT_WORKSPACE_SIZE once
        echo "=== CUBLASLT_WORKSPACE_SIZE=$ws ($(date -u +%H:%M:%S) UTC)" | tee -a "$out/fp8_loop_issue24_workspace.log"
        ( if [ "$ws" = default ]; then unset CUBLASLT_WORKSPACE_SIZE; else export CUBLASLT_WORKSPACE_SIZE=$ws; fi
          python3 benchmarks/fp8_loop_variants.py graph --repeats 3 --profile-steps 3 ) 2>&1 \
            | tee -a "$out/fp8_loop_issue24_workspace.log" || status=1
    done; }
[ "$part" = attention ] && { git log -1 --format='commit %h %s' 2>/dev/null | tee "$out/fp8_attention_knobs_issue24.log"
    python3 benchmarks/fp8_attention_knobs.py --budget-s 240 --json "$out/fp8_attention_knobs_issue24.json" 2>&1 \
        | tee -a "$out/fp8_attention_knobs_issue24.log" || status=1; }
[ "$part" = ffn ] && { git log -1 --format='commit %h %s' 2>/dev/null | tee "$out/fp8_ffn_epilogue_issue24.log"
    python3 -m pip list 2>/dev/null | grep -iE "^(cuda-bindings|cuda-core|cuda-pathfinder|nvmath-python) " \
        | tee -a "$out/fp8_ffn_epilogue_issue24.log"
    CUBLASLT_LOG_MASK=1 CUBLASLT_LOG_FILE="$out/fp8_epilogue_support_cublaslt_%i.log" \
        python3 benchmarks/fp8_epilogue_support.py 2>&1 | tee "$out/fp8_epilogue_support_issue24.log" || status=1
    python3 benchmarks/fp8_ffn_epilogue.py 2>&1 | tee -a "$out/fp8_ffn_epilogue_issue24.log" || status=1
    # the loop with the epilogue only where its op runs on this GPU
    if python3 -m pytest -q tests/test_fp8_ffn.py 2>&1 | tee -a "$out/fp8_ffn_epilogue_issue24.log"; then
        python3 benchmarks/fp8_loop_variants.py graph+noepilogue graph --repeats 3 \
            --profile-steps 40 2>&1 | tee "$out/fp8_loop_issue24_epilogue.log" || status=1
    else status=1; fi; }
done
exit $status
