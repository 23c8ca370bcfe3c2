"""Delivery channels: e-mail, SMS gateway, webhook."""
