"""The process: settings, the ASGI app, webhooks, auth, rate limits, metrics and the CLI."""
