"""selfsteer.training."""
