"""SNS HTTP deliveries: the envelope SNS wraps around a CloudWatch alarm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.ingest import unicode_text

TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
"""The message types SNS posts to an HTTP(S) subscription."""


def check_envelope(envelope: Mapping[str, Any]) -> None:
    """Refuse an envelope whose keys or string values are not valid Unicode text.

    Checked before the topic, the signature or the store sees them: the
    string to sign, the audit record of a refusal and the stored message id
    are all text, so a lone surrogate in ``TopicArn`` or ``MessageId`` is the
    sender's error (400 naming the field), not ours.
    """
    for key, value in envelope.items():
        unicode_text(key, f"a key {ascii(key)[:80]}")
        if isinstance(value, str):
            unicode_text(value, key)
