"""The device service."""
