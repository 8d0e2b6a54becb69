"""`revise convert wan`: the shared sample made by the original implementation, reproduced by
plain diffusers/transformers classes after conversion; and other sizes than the sample."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from safetensors.torch import load_file, save_file
from transformers import UMT5EncoderModel

from revise import ReviseInputError
from revise.convert.synthetic import original_dit, original_t5, original_vae_from
from revise.convert.wan import convert_wan

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "wan2.1-original-tiny"
if not SAMPLE.is_dir():
    SAMPLE = Path(__file__).resolve().parents[1] / "shared" / "samples" / "wan2.1-original-tiny"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared/samples/wan2.1-original-tiny not found")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    return convert_wan(SAMPLE / "checkpoint", tmp_path_factory.mktemp("conv") / "wan-diffusers")


@needs_sample
def test_dit_matches_the_original(converted):
    ref = load_file(SAMPLE / "reference" / "wan_dit_io.safetensors")
    text_len = json.loads((SAMPLE / "reference" / "meta.json").read_text())["dit"]["text_len"]
    dit = WanTransformer3DModel.from_pretrained(converted / "transformer").eval()
    ctx = torch.cat([ref["context"], ref["context"].new_zeros(text_len - len(ref["context"]), ref["context"].shape[1])])
    with torch.no_grad():
        out = dit(ref["x"][None], ref["t"], ctx[None], return_dict=False)[0][0]
    assert rel_err(out, ref["out"]) < 1e-4


@needs_sample
def test_vae_encode_and_decode_match_the_original(converted):
    ref = load_file(SAMPLE / "reference" / "wan_vae_io.safetensors")
    vae = AutoencoderKLWan.from_pretrained(converted / "vae").eval()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        latents = (vae.encode(ref["video"]).latent_dist.mode() - mean) / std
        decoded = vae.decode(ref["latents"] * std + mean).sample.clamp(-1, 1)
    assert rel_err(latents, ref["latents"]) < 1e-4
    assert rel_err(decoded, ref["decoded"]) < 1e-4


@needs_sample
def test_t5_matches_the_original(converted):
    ref = load_file(SAMPLE / "reference" / "wan_t5_io.safetensors")
    t5 = UMT5EncoderModel.from_pretrained(converted / "text_encoder").eval()
    with torch.no_grad():
        hidden = t5(input_ids=ref["ids"], attention_mask=ref["mask"]).last_hidden_state
    m = ref["mask"].bool()
    assert rel_err(hidden[m], ref["hidden"][m]) < 1e-4


@needs_sample
def test_refuses_to_overwrite_and_names_missing_files(converted, tmp_path):
    with pytest.raises(ReviseInputError, match="already exists"):
        convert_wan(SAMPLE / "checkpoint", converted)
    partial = tmp_path / "partial"
    shutil.copytree(SAMPLE / "checkpoint", partial)
    (partial / "Wan2.1_VAE.pth").unlink()
    with pytest.raises(ReviseInputError, match="Wan2.1_VAE.pth"):
        convert_wan(partial, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_other_sizes_convert_exactly(tmp_path):
    src = tmp_path / "wan-other"
    src.mkdir()
    dit_sd, config = original_dit()
    # a sharded DiT, as the 14B release ships it
    keys = list(dit_sd)
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "diffusion_pytorch_model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, ks in shards.items():
        save_file({k: dit_sd[k] for k in ks}, str(src / name))
    (src / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: name for name, ks in shards.items() for k in ks}}))
    (src / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    vae_ref = AutoencoderKLWan(base_dim=4, z_dim=8, dim_mult=[1, 2, 2], num_res_blocks=1,
                               temperal_downsample=[True, False], latents_mean=[0.0] * 8, latents_std=[1.0] * 8).eval()
    torch.save(original_vae_from(vae_ref), src / "Wan2.1_VAE.pth")
    t5_sd = original_t5()
    torch.save(t5_sd, src / "models_t5_umt5-xxl-enc-bf16.pth")

    out = convert_wan(src, tmp_path / "converted", max_shard_bytes=200_000)

    dit = WanTransformer3DModel.from_pretrained(out / "transformer")
    assert (dit.config.num_layers, dit.config.text_dim, dit.config.ffn_dim) == (2, 40, 96)
    assert (out / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file(), "written in shards"
    assert torch.equal(dit.blocks[1].attn2.to_out[0].weight, dit_sd["blocks.1.cross_attn.o.weight"])
    assert torch.equal(dit.blocks[0].norm2.weight, dit_sd["blocks.0.norm3.weight"])
    assert torch.equal(dit.scale_shift_table, dit_sd["head.modulation"])

    vae = AutoencoderKLWan.from_pretrained(out / "vae").eval()
    assert (vae.config.base_dim, vae.config.z_dim, list(vae.config.dim_mult), vae.config.num_res_blocks) == (4, 8, [1, 2, 2], 1)
    assert list(vae.config.temperal_downsample) == [True, False]
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(video).latent_dist.mode(), vae_ref.encode(video).latent_dist.mode(),
                                   rtol=0, atol=0)
        z = torch.randn(1, 8, 2, 4, 4)
        torch.testing.assert_close(vae.decode(z).sample, vae_ref.decode(z).sample, rtol=0, atol=0)

    t5 = UMT5EncoderModel.from_pretrained(out / "text_encoder")
    assert (t5.config.d_model, t5.config.num_heads, t5.config.num_layers, t5.config.d_ff) == (40, 5, 3, 72)
    assert torch.equal(t5.get_input_embeddings().weight, t5_sd["token_embedding.weight"])
    assert torch.equal(t5.encoder.block[2].layer[1].DenseReluDense.wi_0.weight, t5_sd["blocks.2.ffn.gate.0.weight"])


def test_misshaped_and_unexpected_tensors_are_named(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    dit_sd, config = original_dit(layers=1)
    dit_sd["blocks.0.ffn.2.weight"] = torch.zeros(3, 3)
    dit_sd["blocks.0.surprise.weight"] = torch.zeros(2)
    save_file(dit_sd, str(src / "diffusion_pytorch_model.safetensors"))
    (src / "config.json").write_text(json.dumps(config))
    torch.save({}, src / "Wan2.1_VAE.pth")
    torch.save({}, src / "models_t5_umt5-xxl-enc-bf16.pth")
    with pytest.raises(ReviseInputError) as err:
        convert_wan(src, tmp_path / "out")
    msg = str(err.value)
    assert "blocks.0.ffn.net.2.weight [3, 3]" in msg and "blocks.0.surprise.weight" in msg
    assert not (tmp_path / "out").exists()


@needs_sample
def test_cli_convert(tmp_path, capsys):
    from revise.cli import main

    assert main(["convert", "wan", str(SAMPLE / "checkpoint"), str(tmp_path / "out")]) == 0
    assert "converted" in capsys.readouterr().out
    assert (tmp_path / "out" / "transformer" / "config.json").is_file()
    assert main(["convert", "wan", str(tmp_path / "nope"), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
