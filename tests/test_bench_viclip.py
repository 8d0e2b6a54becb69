"""ViCLIP_T: the loader for InternVideo's ViCLIP checkpoints, checked on a tiny random instance
saved in that layout against a functional re-implementation of the original forward; the CLIP
fallback on a tiny random CLIPModel; and what the report says about each."""

import json
import string

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from bench_data import make_run
from revise.bench.judges.viclip import CLIPFrameScorer, ViCLIPScorer, load_viclip
from revise.bench.rundir import RunDir
from revise.cli import main
from revise.errors import ReviseInputError

W, LAYERS, HEADS, PATCH, GRID, FRAMES = 128, 2, 2, 8, 2, 4      # vision: 128 wide -> 2 heads of 64
TW, TLAYERS, CTX, D = 64, 2, 12, 16                             # text: 64 wide -> 1 head


def tokenizer_folder(path):
    chars = string.ascii_lowercase + string.digits + ".,'?!-"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(path)
    return len(vocab)


def viclip_layout(vocab, seed=0):
    """A random state dict with InternVideo ViCLIP's key names and shapes (written out by hand)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    sd = {"vision_encoder.conv1.weight": r(W, 3, 1, PATCH, PATCH), "vision_encoder.class_embedding": r(W),
          "vision_encoder.positional_embedding": r(GRID * GRID + 1, W),
          "vision_encoder.temporal_positional_embedding": r(1, FRAMES, W), "vision_encoder.proj": r(W, D),
          "text_encoder.token_embedding.weight": r(vocab, TW), "text_encoder.positional_embedding": r(CTX, TW),
          "text_encoder.text_projection": r(TW, D), "temp": torch.tensor(0.01)}
    for name, width in (("vision_encoder.ln_pre", W), ("vision_encoder.ln_post", W), ("text_encoder.ln_final", TW)):
        sd[name + ".weight"], sd[name + ".bias"] = 1 + r(width), r(width)
    for prefix, width, layers in (("vision_encoder", W, LAYERS), ("text_encoder", TW, TLAYERS)):
        for i in range(layers):
            b = f"{prefix}.transformer.resblocks.{i}."
            sd |= {b + "attn.in_proj_weight": r(3 * width, width), b + "attn.in_proj_bias": r(3 * width),
                   b + "attn.out_proj.weight": r(width, width), b + "attn.out_proj.bias": r(width),
                   b + "mlp.c_fc.weight": r(4 * width, width), b + "mlp.c_fc.bias": r(4 * width),
                   b + "mlp.c_proj.weight": r(width, 4 * width), b + "mlp.c_proj.bias": r(width)}
            for ln in ("ln_1", "ln_2"):
                sd[b + ln + ".weight"], sd[b + ln + ".bias"] = 1 + r(width), r(width)
    return sd


def ref_blocks(x, sd, prefix, layers, heads, mask=None):
    """The original resblocks, sequence-first, written with torch.nn.functional."""
    e = x.shape[-1]
    for i in range(layers):
        b = f"{prefix}.transformer.resblocks.{i}."
        h = F.layer_norm(x, (e,), sd[b + "ln_1.weight"], sd[b + "ln_1.bias"])
        a, _ = F.multi_head_attention_forward(
            h, h, h, e, heads, sd[b + "attn.in_proj_weight"], sd[b + "attn.in_proj_bias"], None, None, False, 0.0,
            sd[b + "attn.out_proj.weight"], sd[b + "attn.out_proj.bias"], training=False, need_weights=False,
            attn_mask=mask)
        x = x + a
        h = F.layer_norm(x, (e,), sd[b + "ln_2.weight"], sd[b + "ln_2.bias"])
        h = F.linear(h, sd[b + "mlp.c_fc.weight"], sd[b + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), sd[b + "mlp.c_proj.weight"], sd[b + "mlp.c_proj.bias"])
    return x


def ref_vision(sd, video):
    v = "vision_encoder."
    x = F.conv3d(video, sd[v + "conv1.weight"], stride=(1, PATCH, PATCH))
    b, c, t, h, w = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    x = torch.cat([sd[v + "class_embedding"] + torch.zeros(b * t, 1, c), x], dim=1) + sd[v + "positional_embedding"]
    cls, x = x[:b, :1], x[:, 1:]
    x = x.reshape(b, t, h * w, c).transpose(1, 2).reshape(b * h * w, t, c)        # (b t) n m -> (b n) t m
    x = (x + sd[v + "temporal_positional_embedding"]).reshape(b, h * w * t, c)     # -> b (n t) m
    x = F.layer_norm(torch.cat([cls, x], 1), (c,), sd[v + "ln_pre.weight"], sd[v + "ln_pre.bias"])
    x = ref_blocks(x.permute(1, 0, 2), sd, "vision_encoder", LAYERS, HEADS)
    x = F.layer_norm(x, (c,), sd[v + "ln_post.weight"], sd[v + "ln_post.bias"])
    return x[0] @ sd[v + "proj"]


def ref_text(sd, ids):
    t = "text_encoder."
    x = sd[t + "token_embedding.weight"][ids] + sd[t + "positional_embedding"]
    mask = torch.full((CTX, CTX), float("-inf")).triu(1)
    x = ref_blocks(x.permute(1, 0, 2), sd, "text_encoder", TLAYERS, 1, mask).permute(1, 0, 2)
    x = F.layer_norm(x, (TW,), sd[t + "ln_final.weight"], sd[t + "ln_final.bias"])
    return x[torch.arange(len(ids)), ids.argmax(-1)] @ sd[t + "text_projection"]


@pytest.fixture(scope="module")
def viclip_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viclip")
    vocab = tokenizer_folder(folder)
    sd = viclip_layout(vocab)
    torch.save({"model": sd}, folder / "ViClip-InternVid-10M-FLT.pth")          # the release's wrapping
    save_file(sd, folder / "viclip.safetensors")
    return folder, sd


def test_viclip_loader_matches_the_original_forward(viclip_files):
    folder, sd = viclip_files
    model = load_viclip(folder / "ViClip-InternVid-10M-FLT.pth")
    c = model.config
    assert (c.vision_width, c.vision_heads, c.image_size, c.num_frames, c.text_heads, c.context_length) == \
        (W, HEADS, GRID * PATCH, FRAMES, 1, CTX)
    video = torch.randn(2, 3, FRAMES, GRID * PATCH, GRID * PATCH, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.vision_encoder(video), ref_vision(sd, video), rtol=1e-4, atol=1e-5)
        ids = torch.zeros(2, CTX, dtype=torch.long)
        ids[0, :5] = torch.tensor([84, 3, 9, 40, 85])
        ids[1, :3] = torch.tensor([84, 50, 85])
        eot = torch.tensor([4, 2])
        torch.testing.assert_close(model.text_encoder(ids, eot), ref_text(sd, ids), rtol=1e-4, atol=1e-5)
    same = load_viclip(folder / "viclip.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))


def test_viclip_scores_and_refuses_other_layouts(viclip_files, tmp_path):
    folder, sd = viclip_files
    _, run = make_run(tmp_path, ["show it later", "turn it around"])
    scorer = ViCLIPScorer(folder / "viclip.safetensors", folder)
    video = RunDir(run).video("item-000")
    a, b = scorer(video, "show it later"), scorer(video, "a red ball bounces twice")
    assert -100 <= a <= 100 and a != b and scorer(video, "show it later") == a
    bad = {k: v for k, v in sd.items() if not k.startswith("text_encoder.ln_final")}
    save_file(bad, tmp_path / "bad.safetensors")
    with pytest.raises(ReviseInputError, match="does not match the ViCLIP layout: missing"):
        load_viclip(tmp_path / "bad.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ReviseInputError, match="other.safetensors: not a ViCLIP checkpoint .*'vision_encoder.conv1.weight'"):
        load_viclip(tmp_path / "other.safetensors")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    vocab = tokenizer_folder(folder)
    cfg = CLIPConfig(text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16, bos_token_id=vocab - 2,
                                      eos_token_id=vocab - 1, pad_token_id=vocab - 1),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)
    return folder


def test_clip_fallback_averages_frame_similarities(clip_folder, tmp_path):
    from revise.bench.frames import sample_frames
    from revise.bench.judges.viclip import CLIP_MEAN, CLIP_STD, _resize_normalize

    _, run = make_run(tmp_path, ["show it later"])
    video = RunDir(run).video("item-000")
    scorer = CLIPFrameScorer(clip_folder, frames=4)
    value = scorer(video, "show it later")
    model = scorer.model
    tokens = scorer.tokenizer(["show it later"], return_tensors="pt")
    per_frame = []
    with torch.no_grad():
        for frame in sample_frames(video, 4):
            pixels = _resize_normalize(frame[None], 32, CLIP_MEAN, CLIP_STD, crop=True)
            out = model(**tokens, pixel_values=pixels)
            per_frame.append(100 * float(F.cosine_similarity(out.image_embeds, out.text_embeds)[0]))
    assert value == pytest.approx(sum(per_frame) / 4, abs=1e-4)
    assert len(set(round(p, 4) for p in per_frame)) > 1, "the frames differ, so the average means something"


def test_score_and_report_name_the_text_video_model(viclip_files, clip_folder, tmp_path, capsys):
    folder, _ = viclip_files
    _, run = make_run(tmp_path, ["show it later", "turn it around", "one second earlier"])
    assert main(["bench", "report", str(run), "--out", str(tmp_path / "r0"), "--no-gallery"]) == 0
    md = (tmp_path / "r0" / "report.md").read_text()
    assert "ViCLIP_T absent" in md and "| baseline | – |" in md
    assert main(["bench", "score", str(run), "--clip", str(clip_folder), "--quiet"]) == 0
    assert main(["bench", "report", str(run), "--out", str(tmp_path / "r1"), "--no-gallery"]) == 0
    md = (tmp_path / "r1" / "report.md").read_text()
    assert "CLIP fallback (transformers CLIPModel, frame-averaged), not ViCLIP" in md
    assert main(["bench", "score", str(run), "--viclip", str(folder / "ViClip-InternVid-10M-FLT.pth"), "--quiet"]) == 0
    recs = RunDir(run).score_records("viclip_t-viclip")
    assert len(recs) == 3 and all(r["status"] == "ok" for r in recs.values())
    assert main(["bench", "report", str(run), "--out", str(tmp_path / "r2"), "--no-gallery"]) == 0
    md = (tmp_path / "r2" / "report.md").read_text()
    mean = sum(r["ViCLIP_T"] for r in recs.values()) / 3
    assert "baseline: ViCLIP." in md and f"| baseline | {mean:.2f} |" in md
    csv = (tmp_path / "r2" / "report.csv").read_text().splitlines()
    assert csv[0].startswith("group,method,ViCLIP_T,EA") and any(l.startswith("all,baseline,") for l in csv)
