"""Hooks for apps above audit (webhooks): audit imports none of them.

``event_recorded`` is sent inside ``record_event``'s transaction, right after the event row is
written, so a receiver's writes (a webhook's outbox row) commit or roll back with the event.
A receiver that raises aborts the event with it: keep receivers small and total.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``event=`` the saved ``audit.models.Event``.
event_recorded = Signal()
