"""Alerts to duty officers: rules, messages, CAP 1.2 and delivery channels."""
