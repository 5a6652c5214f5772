"""Slack over HTTP (aiohttp) or Socket Mode, through slack-bolt's AsyncApp."""
