"""The words the project's data and scores share, spelled once.

RVE-Bench splits its items into two ``SUBSETS`` (RAVE: edit the given clip; ICVG: generate the scene
that follows it) and four reasoning ``CATEGORIES``. A judge scores an edit on four ``DIMENSIONS``
(1-10 each), written by their short names, and ``OVERALL`` is the metric combining them. The critic
(the understanding VLM) answers Yes/No to one question per dimension, named by
``CRITIC_DIMENSIONS`` (same order), or to the overall question, ``OVERALL_QUESTION``: all four hold.
"""

from __future__ import annotations

SUBSETS = ("RAVE", "ICVG")
CATEGORIES = ("causal", "temporal", "spatial", "commonsense")

DIMENSIONS = ("EA", "PC", "GN", "GR")
OVERALL = "Overall"

CRITIC_DIMENSIONS = ("edit_accuracy", "preservation_consistency", "generation_naturalness", "generation_realism")
CRITIC_DIMENSION = dict(zip(DIMENSIONS, CRITIC_DIMENSIONS))     # "EA" -> "edit_accuracy", ...
OVERALL_QUESTION = "overall"
