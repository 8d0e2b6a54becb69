"""Training: the trainer (trainer.py), its config (config.py), the data (data.py, features.py), and
the objectives, one plug-in file each (objectives/)."""
