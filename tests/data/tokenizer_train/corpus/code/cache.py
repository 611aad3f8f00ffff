"""Small caches used by the examples: an LRU cache and a time-to-live cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Optional


class LRUCache:
    """A least-recently-used cache that keeps at most `capacity` items."""

    def __init__(self, capacity: int = 128) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        self.capacity = capacity
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def get(self, key: Hashable, default: Optional[Any] = None) -> Any:
        if key not in self._data:
            self.misses += 1
            return default
        self.hits += 1
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key: Hashable, value: Any) -> None:
        if key in self._data:
            self._data.move_to_end(key)
        self._data[key] = value
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()
        self.hits = self.misses = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, size={len(self)})"


class TTLCache(LRUCache):
    """An LRU cache whose items expire `ttl` seconds after they were stored."""

    def __init__(self, capacity: int = 128, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity)
        self.ttl = ttl
        self._clock = clock
        self._stamps: dict[Hashable, float] = {}

    def get(self, key: Hashable, default: Optional[Any] = None) -> Any:
        stamp = self._stamps.get(key)
        if stamp is not None and self._clock() - stamp > self.ttl:
            del self._data[key]
            del self._stamps[key]
        return super().get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        super().put(key, value)
        self._stamps[key] = self._clock()
        for stale in [k for k in self._stamps if k not in self._data]:
            del self._stamps[stale]


def memoize(capacity: int = 256) -> Callable:
    """Decorator: caches the results of a function of hashable arguments."""

    def decorate(func: Callable) -> Callable:
        cache = LRUCache(capacity)

        def wrapper(*args: Hashable) -> Any:
            result = cache.get(args, _MISSING)
            if result is _MISSING:
                result = func(*args)
                cache.put(args, result)
            return result

        wrapper.cache = cache  # type: ignore[attr-defined]
        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper

    return decorate


_MISSING = object()


@memoize(capacity=1024)
def fib(n: int) -> int:
    """The n-th Fibonacci number."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


if __name__ == "__main__":
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    print(c.get("a"), c.get("zz"), c)
    print([fib(i) for i in range(20)])
