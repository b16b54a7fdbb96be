"""Alerts: rules evaluated on the live window, and their webhook and email notifications."""
