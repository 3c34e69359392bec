"""Snowpipe Streaming (high-performance architecture) through its REST API, on aiohttp: no SDK, no connector."""
