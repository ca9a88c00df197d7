"""Django's Redis cache with one connection pool per process.

Django makes a cache object per thread and per async context, and each keeps its own Redis
connection pool, so under ASGI every request opened fresh Redis connections (a TCP connect and a
handshake, several per request). Here every cache object of a process shares one pool per server;
redis-py's pools are thread-safe and reset themselves in a forked child."""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[str, Any] = {}
_lock = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        client: Any = self  # Django's private attributes, which its type stubs leave out
        url = client._servers[client._get_connection_pool_index(write)]
        pool = _pools.get(url)
        if pool is None:
            with _lock:
                pool = _pools.get(url)
                if pool is None:
                    pool = _pools[url] = client._pool_class.from_url(url, **client._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolClient
