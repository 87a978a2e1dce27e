"""Measuring tools and stand-ins the tests use: not tests themselves."""
