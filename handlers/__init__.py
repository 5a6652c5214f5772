"""Adapters from chat platforms (Slack, console; Discord later) to the core in bot/."""
