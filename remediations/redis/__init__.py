"""Redis actions on redis-py's asyncio client: bounded key deletion, FLUSHDB."""
