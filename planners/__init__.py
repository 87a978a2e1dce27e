"""selfsteer.planners."""
