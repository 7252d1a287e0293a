"""Alerts: render an outbox row for a channel, send it, retry with backoff.

claim due outbox rows --deliver--> AlertMessage --render--> channel.send
    --> mark sent | mark failed (next attempt from backoff) | dead (operator told)
"""
