"""SMTP transport for Direct: deliver sealed messages (client), accept inbound ones (receiving endpoint)."""

from direct.transport.smtp_client import (
    DeliveryReceipt,
    SmtpTarget,
    backoff_delays,
    deliver,
    deliver_with_retry,
)
from direct.transport.smtp_server import ReceivingEndpoint

__all__ = [
    "DeliveryReceipt",
    "ReceivingEndpoint",
    "SmtpTarget",
    "backoff_delays",
    "deliver",
    "deliver_with_retry",
]
