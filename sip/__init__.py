"""SIP signalling for rtbridge: a sans-IO RFC 3261 core and a thin asyncio driver."""
