"""The one error a sender raises: what went wrong, never to whom or what was being sent."""

from __future__ import annotations


class SendFailed(Exception):
    """A message could not be handed over. The text goes to the outbox's last_error and to admins, so
    it names neither the recipient nor the content."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
