"""Judges score one output clip of one item on EA, PC, GN and GR (1-10); ``viclip`` scores
text-video similarity (ViCLIP_T). ``base`` holds what they share: results, errors, the prompt."""
