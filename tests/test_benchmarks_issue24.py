"""#24's benchmark options on the tiny preset (CPU): benchmarks/edit_latency.py's offload, FP8 and
error rows, and benchmarks/train_throughput.py's LoRA rows. No timings are checked, only what the rows
hold."""

import importlib.util
import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_edit_latency_offload_and_fp8_rows(tmp_path, monkeypatch, capsys):
    bench = load("edit_latency")
    out = tmp_path / "rows.json"
    monkeypatch.setattr(sys, "argv", ["edit_latency.py", "--preset", "tiny", "--frames", "5", "--height", "32",
                                      "--width", "32", "--steps", "1", "--repeats", "1", "--offload", "--fp8",
                                      "--no-stock", "--memory-cap-gib", "24", "--json", str(out)])
    bench.main()
    rows = json.loads(out.read_text())["rows"]
    labels = [r["label"] for r in rows]
    assert labels == ["revise, eager (default SDPA)", "revise, eager, offload: every stage moved",
                      "revise, eager, offload: kept what fits a 20 GiB peak",
                      "revise (int8 encoders), eager, offload: kept what fits a 20 GiB peak",
                      "revise (int8 encoders), eager (default SDPA), + FP8 linears (enable_fp8(attention=False))"]
    offloaded = [r for r in rows if r.get("offload")]
    assert offloaded[0]["keep"] == [] and offloaded[0]["moved_per_edit_gb"] > 0
    assert set(offloaded[1]["keep"]) >= {"transformer", "vae"}          # the tiny model fits 20 GiB whole
    for r in rows[:4]:          # offload moves the same weights: the DiT's outputs are the same
        assert r["velocity_rel_err"] == 0 and r["latents_rel_err"] == 0
    assert 0 < rows[-1]["velocity_rel_err"] < 0.1 and 0 < rows[-1]["latents_rel_err"] < 0.1
    printed = capsys.readouterr().out
    assert "| total / resident eager |" in printed and "goal met" in printed
    assert "velocity rel. error" in printed
    assert "conditional context (VLM, T5, connectors) with (int8 encoders)" in printed


def test_memory_cap_passes_a_device_index(monkeypatch):
    """torch.cuda.set_per_process_memory_fraction refuses torch.device("cuda") without an index (the
    first H100 run of #24's rows stopped there): the cap is set on the current device's index."""
    import torch

    bench = load("edit_latency")
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Namespace(total_memory=80 * 2**30))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, i: calls.append((f, i)))
    bench.set_memory_cap(torch.device("cuda"), 24)
    bench.set_memory_cap(torch.device("cuda", 1), None)
    assert calls == [(pytest.approx(0.3), 3), (1.0, 1)]


@pytest.fixture
def fresh_accelerate_state():
    """The benchmark's trainer sets accelerate's process-wide state to bf16; later tests' trainers
    ask for other precisions, which accelerate refuses once a state exists."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_train_throughput_lora_rows(tmp_path, capsys, fresh_accelerate_state):
    bench = load("train_throughput")
    args = Namespace(preset="tiny", frames=5, height=32, width=32, steps=1)
    data = bench.make_data(tmp_path, 5, 32, 32)
    full = bench.run("sft", True, 0, data, tmp_path / "full", args)
    lora = bench.run("sft", True, 4, data, tmp_path / "lora", args)
    assert lora["lora_rank"] == 4 and full["lora_rank"] == 0
    assert 0 < lora["trainable_params"] < full["trainable_params"]
    bench.print_table([full, lora, {"objective": "sft", "checkpointing": True, "lora_rank": 64, "oom": True}])
    table = capsys.readouterr().out
    assert "| sft | on | in full |" in table and "| sft | on | LoRA rank 4 |" in table
    assert "| sft | on | LoRA rank 64 | | out of memory | | | |" in table
    assert f"{lora['trainable_params']:,}" in table


@pytest.mark.parametrize("options", [["--no-full"], ["--lora-ranks", "-1"]])
def test_train_throughput_refuses_nothing_to_run(monkeypatch, options):
    bench = load("train_throughput")
    monkeypatch.setattr(sys, "argv", ["train_throughput.py", "--preset", "tiny", *options])
    with pytest.raises(SystemExit, match="nothing to run"):
        bench.main()


def test_fp8_linear_rows(tmp_path, monkeypatch, capsys):
    """benchmarks/fp8_linear.py on the CPU (FP8 emulated: no speed is checked): every linear of a block
    gets every way, and the loop-level table sums them."""
    bench = load("fp8_linear")
    out = tmp_path / "fp8.json"
    monkeypatch.setattr(sys, "argv", ["fp8_linear.py", "--device", "cpu", "--tokens", "16", "--dim", "32",
                                      "--ffn", "64", "--iters", "1", "--no-compile", "--json", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    assert report["rows"] == 32
    assert [(r["in"], r["out"]) for r in report["linears"]] == [(32, 96), (32, 32), (32, 32), (32, 32), (32, 64),
                                                                (64, 32)]
    for r in report["linears"]:
        assert set(r["seconds"]) == {"bf16", "fp8 mm, row-wise", "fp8 mm, row-wise, fast accumulation",
                                     "fp8 mm, tensor-wise", "quantize rows, eager",
                                     "Fp8Linear, eager"}
        assert all(s > 0 for s in r["seconds"].values())
    printed = capsys.readouterr().out
    assert "the block's linears over 30 layers x 40 steps" in printed and "| Fp8Linear, eager |" in printed


@pytest.mark.parametrize("script", ["fp8_attention.py", "fp8_loop_variants.py", "fp8_kernel_configs.py",
                                    "fp8_attention_lengths.py", "fp8_attention_knobs.py", "fp8_ffn_epilogue.py",
                                    "fp8_epilogue_support.py"])
def test_fp8_gpu_benchmarks_need_a_gpu_and_say_so_in_one_line(script):
    import subprocess

    res = subprocess.run([sys.executable, str(BENCH / script)], capture_output=True, text=True,
                         env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert res.returncode == 2 and res.stderr.strip() == "error: this benchmark needs a CUDA GPU"


def test_fp8_loop_variants_refuses_an_unknown_variant_in_one_line():
    import subprocess

    res = subprocess.run([sys.executable, str(BENCH / "fp8_loop_variants.py"), "fastest"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "unknown variant 'fastest'" in res.stderr.strip().splitlines()[-1]


def test_fp8_loop_variants_joins_variants_with_a_plus():
    bench = load("fp8_loop_variants")
    joined = bench.variant("graph+qk_2warps")
    assert joined["cuda_graph"] and joined["qk_warps"] == 2 and joined["native_e4m3"]
    assert bench.variant("qk_1warp+qk_4warps")["qk_warps"] == 4          # a later name's setting wins
    issue24_loop = bench.variant("graph+pad+vbound+autotune")
    assert issue24_loop["cuda_graph"] and issue24_loop["pad"] == 128 and issue24_loop["value_bound"]
    assert issue24_loop["autotune"] and "gelu_epilogue" not in issue24_loop      # the package's default
    before_run_9 = bench.variant("graph+nopad+novbound+noepilogue")         # run 9c's graph row
    assert before_run_9["pad"] == 0 and not before_run_9["value_bound"] and not before_run_9["gelu_epilogue"]
    with pytest.raises(KeyError):
        bench.variant("graph+fbound")                                       # the GELU's bound went after run 9
    with pytest.raises(KeyError):
        bench.variant("graph+fastest")


def test_fp8_loop_variants_refuses_an_unknown_part_of_a_joined_variant():
    import subprocess

    res = subprocess.run([sys.executable, str(BENCH / "fp8_loop_variants.py"), "graph+fastest"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "unknown variant 'fastest'" in res.stderr.strip().splitlines()[-1]


def test_memset_users_counts_memsets_by_the_kernel_after_them(capsys):
    bench = load("edit_latency")
    bench.memset_users(["Memset (Device)", "gemm", "attn", "Memset (Device)", "Memset (Device)", "attn",
                        "Memset (Device)", "gemm", "norm", "Memset (Device)"])     # the last has no kernel after it
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("memsets, by the kernel that runs right after them")
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [("2", "2", "gemm"), ("2", "1", "attn")]


def test_fp8_attention_knobs_tries_every_kernel_configuration_of_an_engine():
    """benchmarks/fp8_attention_knobs.py: one knob map per KERNEL_CFG value (min..max by stride), the
    other knobs left to cuDNN; an engine without that knob gets cuDNN's choice alone."""
    from types import SimpleNamespace

    bench = load("fp8_attention_knobs")
    knobs = [SimpleNamespace(type="TILE_M", min_value=64, max_value=128, stride=64),
             SimpleNamespace(type="KERNEL_CFG", min_value=0, max_value=6, stride=3)]
    assert bench.knob_choices(knobs, "KERNEL_CFG") == [{"KERNEL_CFG": 0}, {"KERNEL_CFG": 3}, {"KERNEL_CFG": 6}]
    assert bench.knob_choices(knobs[:1], "KERNEL_CFG") == [{}]
    assert bench.describe(knobs) == "TILE_M 64..128/64, KERNEL_CFG 0..6/3"


def test_fp8_loop_variants_applies_the_adoption_rule_to_each_added_option():
    bench = load("fp8_loop_variants")
    results = {"bf16 fast path": (2.5, 0.0), "FP8 graph": (1.814, 2.81e-2), "FP8 graph+pad": (1.780, 2.81e-2),
               "FP8 graph+pad+vbound": (1.790, 2.80e-2), "FP8 graph+pad+vbound+autotune": (1.770, 3.2e-2)}
    lines = bench.adoption(results)
    assert len(lines) == 3
    assert lines[0].startswith("pad: 1.780 s against 1.814 s (-0.034 s)") and lines[0].endswith("-> adopt")
    assert lines[1].startswith("vbound:") and lines[1].endswith("-> do not adopt")          # slower
    assert lines[2].startswith("autotune:") and lines[2].endswith("-> do not adopt")        # error up 14%
