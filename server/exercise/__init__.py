"""Scenario replay as an exercise: a client of the public API that drives a running system."""
