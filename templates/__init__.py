"""Jinja2 templates: every text a person reads, one folder per language (en, de)."""
