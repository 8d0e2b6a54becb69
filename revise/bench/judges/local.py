"""Local judges, no network: the internal critic of a ReViSE model, or any transformers VLM.

* :class:`CriticJudge`: the unified model's own understanding VLM (``revise.critic``), asked the
  critic's question for each dimension alone; its P(Yes) becomes the score ``1 + 9 * P(Yes)``.
* :class:`VLMJudge`: a transformers image-text-to-text model from a local folder
  (``AutoProcessor`` + ``AutoModelForImageTextToText``), shown the same prompt and frames as the
  OpenAI judge and read by the same strict parser; greedy decoding, so a malformed reply is final.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import ReviseInputError
from ..frames import sample_frames
from ..manifest import BenchItem
from ..metrics import SCALE
from ...vocab import CRITIC_DIMENSION
from .base import SYSTEM_PROMPT, JudgeFailure, JudgeResult, MalformedReply, judge_text, parse_reply, scores_only



def _torch_setup(device: str | None, dtype: str | None):
    import torch

    from ..ranks import local_device

    device = device or local_device()
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    return device, torch_dtype


def _frames_or_fail(path: str | Path, count: int, max_side: int) -> np.ndarray:
    try:
        return sample_frames(path, count, max_side)
    except ReviseInputError as err:
        raise JudgeFailure(str(err)) from None


class CriticJudge:
    def __init__(self, model: str, device: str | None = None, dtype: str | None = None, seed: int = 0):
        from ...critic import Critic
        from ...models.revise_model import ReviseModel
        from ...models.understanding import UnderstandingModel

        self.device, torch_dtype = _torch_setup(device, dtype)
        if Path(model).is_dir():
            understanding = UnderstandingModel.from_pretrained(Path(model) / "understanding", torch_dtype)
        else:
            understanding = ReviseModel.from_preset(model, seed=seed).understanding.to(torch_dtype)
        self.critic = Critic(understanding.to(self.device).eval())
        label = Path(model).name if Path(model).is_dir() else model
        self.name = "local-critic-" + re.sub(r"[^A-Za-z0-9_-]+", "_", label)
        self.description = (f"internal critic of {model} (the understanding VLM asked per dimension; "
                            f"score = {SCALE[0]:g} + {SCALE[1] - SCALE[0]:g} * P(Yes))")

    def _clip(self, path: str | Path):
        import torch

        frames = _frames_or_fail(path, max(self.critic.vlm.num_frames, 1), 448)
        clip = torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(127.5).sub(1.0)
        return clip.unsqueeze(0).to(self.device, self.critic.vlm.vision_tower.dtype)

    def score(self, item: BenchItem, video_path: Path) -> JudgeResult:
        source, output = self._clip(item.source_video_path), self._clip(video_path)
        lo, hi = SCALE
        scores = {}
        for short, dimension in CRITIC_DIMENSION.items():
            p = float(self.critic.score(source, output, [item.instruction], dimension=dimension)[0])
            scores[short] = lo + (hi - lo) * p
        return JudgeResult(scores, "critic P(Yes) per dimension")


class VLMJudge:
    def __init__(self, folder: str, device: str | None = None, dtype: str | None = None, frames: int = 4,
                 max_side: int = 448, max_new_tokens: int = 200):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(folder)
        if not path.is_dir():
            raise ReviseInputError(f"--local-vlm {path} is not a folder (a transformers VLM saved with "
                                   "save_pretrained, processor included)")
        self.device, torch_dtype = _torch_setup(device, dtype)
        try:
            self.processor = AutoProcessor.from_pretrained(path)
            self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype).to(self.device).eval()
        except (OSError, ValueError, KeyError) as err:
            raise ReviseInputError(f"cannot load the VLM in {path}: {str(err).splitlines()[0]}") from None
        self.frames, self.max_side, self.max_new_tokens = frames, max_side, max_new_tokens
        self.name = "local-vlm-" + re.sub(r"[^A-Za-z0-9_-]+", "_", path.name)
        self.description = f"local VLM {path} (transformers, greedy; the OpenAI judge's prompt and frames)"

    def messages(self, item: BenchItem, video_path: Path) -> list[dict]:
        from PIL import Image

        head, middle, tail = judge_text(item)

        def images(path: str | Path) -> list[dict]:
            return [{"type": "image", "image": Image.fromarray(f)}
                    for f in _frames_or_fail(path, self.frames, self.max_side)]

        content = [{"type": "text", "text": head}, *images(item.source_video_path),
                   {"type": "text", "text": middle}, *images(video_path), {"type": "text", "text": tail}]
        return [{"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
                {"role": "user", "content": content}]

    def reply(self, messages: list[dict]) -> str:
        import torch

        inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt").to(self.device)
        for key, value in inputs.items():
            if torch.is_floating_point(value):                 # pixels in the model's dtype
                inputs[key] = value.to(self.model.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def score(self, item: BenchItem, video_path: Path) -> JudgeResult:
        text = self.reply(self.messages(item, video_path))
        try:
            parsed = parse_reply(text)
        except MalformedReply as err:
            raise JudgeFailure(f"malformed reply: {err}") from None
        return JudgeResult(scores_only(parsed), parsed["reason"])
