"""Render the bundled example clips (revise/assets/examples/) from code.

Until RVE-Synth ships its own examples this draws one small scene with numpy: a red ball rolling
to the right over a floor under a blue sky, 17 frames of 64x64. Deterministic: re-running it
rewrites the same pixels.

    python scripts/make_examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from revise.video import write_video

OUT = Path(__file__).resolve().parents[1] / "revise" / "assets" / "examples"


def ball_rolls(frames: int = 17, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    video = np.empty((frames, size, size, 3), np.uint8)
    floor = int(size * 0.75)
    for t in range(frames):
        img = np.zeros((size, size, 3), np.float32)
        img[:floor] = np.array([110, 160, 230]) * (1 - 0.3 * yy[:floor, :, None] / floor)  # sky gradient
        img[floor:] = (90, 90, 90)                                                        # floor
        cx, cy, r = 10 + 2.2 * t, floor - 7, 7
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[inside] = (220, 40, 40)
        video[t] = img.clip(0, 255).astype(np.uint8)
    return video


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_video(OUT / "ball_rolls.mp4", ball_rolls(), fps=8)
    examples = [{"name": "ball_rolls", "video": "ball_rolls.mp4", "category": "temporal",
                 "instruction": "Show the scene one second later, once the ball has rolled on."}]
    (OUT / "examples.json").write_text(json.dumps(examples, indent=2) + "\n")
    print(f"wrote {len(examples)} example(s) to {OUT}")


if __name__ == "__main__":
    main()
