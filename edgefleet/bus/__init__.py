"""The purge bus: Redis Streams per cluster, one wire protocol for every component."""

from .checkpoints import Checkpoint, FileCheckpoint, MemoryCheckpoint, RedisCheckpoint
from .messages import BusEntry, BusMessage, MalformedMessage, PurgeMessage, WarmMessage, decode, encode
from .metrics import ConsumerMetrics
from .streams import BusError, BusHistory, BusUnavailable, PurgeBus, PurgeConsumer, WarmConsumer

__all__ = [
    "BusEntry",
    "BusError",
    "BusHistory",
    "BusMessage",
    "BusUnavailable",
    "Checkpoint",
    "ConsumerMetrics",
    "FileCheckpoint",
    "MalformedMessage",
    "MemoryCheckpoint",
    "PurgeBus",
    "PurgeConsumer",
    "PurgeMessage",
    "RedisCheckpoint",
    "WarmConsumer",
    "WarmMessage",
    "decode",
    "encode",
]
