"""How a model turns a source clip and an instruction into its conditioning inputs: its prompt style.

A model folder records its style in ``revise_config.json`` (``"prompt_style"``); a folder without
the key is ``"revise"``. The two styles:

``"revise"`` (models made and trained here, the shipped mini model among them)
    - VLM: the tokenizer's own chat template, user turn ``<video>\\n{instruction}``, assistant turn
      ``[GEN_VID]`` closed by the template's end of turn; ``<video>`` is replaced by the embeddings of
      ``num_frames`` (8) frames spread evenly over the source clip, each resized from the clip tensor
      (antialiased bilinear, differentiable, so the critic can pass gradients to the pixels).
    - VAE: the source clip is ``num_frames`` frames spread evenly over the whole file.
    - T5: the instruction as given.

``"release"`` (converted official releases: what the released inference code does, verified
stage by stage against ``shared/samples/revise-release-tiny``)
    - VLM: VILA's ``llama_3`` conversation, :func:`release_vlm_prompt`: system turn, user turn
      ``<image>\\n<video>\\n{instruction}`` with ``<video>`` left as plain text, assistant turn
      ``[GEN_VID]<|end_of_text|>``, and a second ``<|begin_of_text|>`` in front (the tokenizer adds
      one to the template's own). The one ``<image>`` takes the tokens of the file's frame 0 only,
      resized as SigLIP's image processor does (PIL bicubic on uint8, no crop).
    - VAE: the file's first frame is skipped and the next ``num_frames`` consecutive frames are the
      source clip (the released script's ``--skip_num 1 --sampling_rate 1``); shorter files are refused.
    - T5: Wan's prompt cleaning (:func:`wan_prompt_clean`); the converter also records T5 text
      length 512, the released inference value.
"""

from __future__ import annotations

import html
import re

PROMPT_STYLES = ("revise", "release")
DEFAULT_PROMPT_STYLE = "revise"

IMAGE_TOKEN = "<image>"          # VILA's placeholder for one image's tokens
RELEASE_SKIP_FRAMES = 1          # the released script's --skip_num
RELEASE_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual "
                  "content that the user provides, and assist the user with a variety of tasks using natural "
                  "language.")


def check_prompt_style(style: str) -> str:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}: one of {', '.join(PROMPT_STYLES)}")
    return style


def release_vlm_prompt(instruction: str) -> str:
    """The conditioning prompt of the released code, as VILA's ``llama_3`` template writes it
    (before the tokenizer adds its own ``<|begin_of_text|>``)."""
    return ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + RELEASE_SYSTEM + "<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n" + f"{IMAGE_TOKEN}\n<video>\n{instruction}" + "<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n[GEN_VID]<|end_of_text|>")


def wan_prompt_clean(text: str) -> str:
    """Wan2.1's T5 prompt cleaning (``clean="whitespace"``): ftfy's fixes, HTML entities unescaped
    twice, then every run of whitespace made one space and the ends stripped."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()
