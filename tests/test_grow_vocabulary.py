"""Growing the shipped model's word vocabulary to RVE-Synth v2's words (revise/models/vocabulary.py):
the new words get their own tokens, old ids stay, and the grown model computes exactly what the old
one did (new rows start as <unk>'s) until training moves them; the grown folder saves and loads."""

from pathlib import Path

import torch

from revise import ReviseModel
from revise.models.tokenizers import SYNTH_VOCABULARY
from revise.models.vocabulary import grow_vocabulary

SHIPPED = Path(__file__).resolve().parents[1] / "revise" / "assets" / "models" / "mini"
SENTENCES = ["Drain the tank until it is empty", "Let the ice melt in the bright sun", "Show the scene one second later"]


def lm_logits(model, text):
    ids = model.understanding.tokenizer(text, return_tensors="pt").input_ids
    return ids, model.understanding.llm(input_ids=ids).logits[0]


@torch.no_grad()
def test_grown_vocabulary_reads_new_words_and_changes_nothing_else(tmp_path):
    model = ReviseModel.from_pretrained(SHIPPED, dtype=torch.float32).eval()
    t5_old, lm_old = dict(model.tokenizer.get_vocab()), dict(model.understanding.tokenizer.get_vocab())
    unk = model.tokenizer.unk_token_id
    assert unk in model.tokenizer("drain", add_special_tokens=False).input_ids, "the shipped model lacks v2's words"
    text_before = model.encode_text(SENTENCES)
    lm_before = [lm_logits(model, s) for s in SENTENCES]

    added = grow_vocabulary(model, SYNTH_VOCABULARY.read_text().split())
    assert {"drain", "melt", "bright"} <= set(added["text_encoder"]) and added["text_encoder"] == added["understanding"]
    for tok, old in ((model.tokenizer, t5_old), (model.understanding.tokenizer, lm_old)):
        assert {w: tok.get_vocab()[w] for w in old} == old, "every old token keeps its id"
        assert tok.unk_token_id not in tok("drain the tank", add_special_tokens=False).input_ids
    assert model.text_encoder.get_input_embeddings().weight.shape[0] == len(model.tokenizer)
    assert model.understanding.llm.get_input_embeddings().weight.shape[0] == len(model.understanding.tokenizer)

    for a, b in zip(model.encode_text(SENTENCES), text_before):
        assert torch.equal(a, b), "a new word is read as <unk> was, until training moves it"
    for (ids_old, before), s in zip(lm_before, SENTENCES):
        ids, after = lm_logits(model, s)
        assert len(ids[0]) == len(ids_old[0])
        torch.testing.assert_close(after[:, :before.shape[1]], before, rtol=0, atol=1e-5)  # a wider matmul

    folder = model.save_pretrained(tmp_path / "grown")
    again = ReviseModel.from_pretrained(folder, dtype=torch.float32).eval()
    for a, b in zip(again.encode_text(SENTENCES), text_before):
        assert torch.equal(a, b)
    assert grow_vocabulary(again, SYNTH_VOCABULARY.read_text().split()) == {"text_encoder": [], "understanding": []}
