"""Training: objectives (pure functions) and the trainer."""
