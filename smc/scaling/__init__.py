"""Test-time scaling on the particle machinery."""
