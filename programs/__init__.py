"""selfsteer.programs."""
