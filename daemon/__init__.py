"""Dropsight's headless service: finds photos, classifies them, writes sidecars."""

__version__ = "0.3.0"
APP_NAME = "dropsight"
