"""Local judges: the internal critic of a (tiny) ReViSE model, and a transformers VLM (a tiny random
Llava) given the OpenAI judge's prompt, whose garbage replies are recorded as malformed."""

import pytest
import torch

from bench_data import make_run
from revise.bench.judges.local import CriticJudge, VLMJudge
from revise.bench.manifest import load_manifest
from revise.bench.rundir import RunDir
from revise.cli import main


def test_critic_judge_maps_p_yes_to_the_scale(tmp_path, capsys):
    manifest, run = make_run(tmp_path, ["show it one second later", "what if it were twice as heavy"])
    assert main(["bench", "score", str(run), "--judge", "local", "--local-model", "tiny", "--quiet"]) == 0
    recs = RunDir(run).score_records("local-critic-tiny")
    assert set(recs) == {"item-000", "item-001"} and all(r["status"] == "ok" for r in recs.values())
    judge = CriticJudge("tiny")
    item = load_manifest(manifest)[0]
    source, output = judge._clip(item.source_video_path), judge._clip(RunDir(run).video(item.id))
    p = float(judge.critic.score(source, output, [item.instruction], dimension="edit_accuracy")[0])
    assert recs["item-000"]["EA"] == pytest.approx(1 + 9 * p, abs=1e-5)
    assert all(1 <= recs[i][d] <= 10 for i in recs for d in ("EA", "PC", "GN", "GR"))
    assert main(["bench", "score", str(run), "--judge", "local", "--quiet"]) == 2
    assert "exactly one of --local-model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from revise.models.tokenizers import build_byte_tokenizer

    folder = tmp_path_factory.mktemp("vlm")
    tok = build_byte_tokenizer("chat", 4096)
    tok.add_tokens(["<image>"], special_tokens=True)
    chat = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' }}"
            "{% for c in m['content'] %}{% if c['type'] == 'image' %}{{ '<image>' }}{% else %}{{ c['text'] }}"
            "{% endif %}{% endfor %}{{ '<|eot_id|>' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=16),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="full"))
    model.save_pretrained(folder)
    LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                   tokenizer=tok, patch_size=16, vision_feature_select_strategy="full", chat_template=chat,
                   num_additional_image_tokens=1).save_pretrained(folder)
    return folder


def test_local_vlm_gets_the_judge_prompt_and_malformed_replies_are_recorded(tmp_path, tiny_vlm):
    manifest, run = make_run(tmp_path, ["show it later", "turn it around"])
    judge = VLMJudge(str(tiny_vlm), frames=2, max_new_tokens=12)
    item = load_manifest(manifest)[0]
    messages = judge.messages(item, RunDir(run).video(item.id))
    user = messages[1]["content"]
    assert [c["type"] for c in user].count("image") == 4 and "Instruction: show it later" in user[0]["text"]
    assert "EA (Edit Accuracy)" in messages[0]["content"][0]["text"]
    reply = judge.reply(messages)
    assert isinstance(reply, str)
    assert main(["bench", "score", str(run), "--judge", "local", "--local-vlm", str(tiny_vlm), "--judge-frames", "2",
                 "--quiet"]) == 0
    recs = RunDir(run).score_records("local-vlm-" + tiny_vlm.name)
    assert len(recs) == 2 and all(r["status"] == "failed" and r["reason"].startswith("malformed reply")
                                  for r in recs.values()), "random weights cannot write the JSON asked for"
