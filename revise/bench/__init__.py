"""RVE-Bench harness: generate every item of a manifest with an editor, score the outputs with
ViCLIP_T and a judge (GPT-4o or any OpenAI-compatible endpoint, a local VLM or the internal critic,
or the exact RVE-Synth judge), and report tables, charts and an HTML gallery like the paper's.

Modules: ``manifest`` (items), ``rundir`` (a run's folder and its per-item logs), ``ranks``
(data-parallel sharding), ``run`` (generation), ``judges/`` (scorers), ``cache`` (sqlite reply
cache), ``score`` (scoring a run), ``metrics`` (scale and the Overall formula), ``report``,
``charts``, ``gallery``, ``cli`` (the ``revise bench`` subcommand).
"""
