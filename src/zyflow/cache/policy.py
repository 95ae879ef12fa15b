"""The intelligent cache policy (seed: 지능형 캐시 전략), measured against plain LRU.

Per-key access statistics (frequency, regularity, mean interval and its variance,
size, load cost) drive the seed's three decisions:

* cacheability (admission): the seed's score, plus a frequency duel under pressure:
  a newcomer displaces the eviction victim only if it has been asked for more often
  (TinyLFU-style), which keeps one-off scans from flushing the hot set;
* TTL: the seed's rule (regular access: twice the mean interval, at least 5 min;
  irregular: half of it, at least 1 min), clamped to the level's bounds;
* eviction priority: Greedy-Dual-Size-Frequency, ``clock + frequency × cost / size``,
  so cheap, large, rarely used entries go first and old priorities age out.

Statistics outlive evictions in a bounded table, so a key's history survives its
absence from the cache (that is what lets admission recognise a returning hot key).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class AccessStats:
    count: float = 0.0  # decayed access count
    first: float = 0.0
    last: float = 0.0
    mean_interval: float = 0.0
    m2: float = 0.0  # running sum of squared interval deviations (Welford)
    intervals: int = 0
    size: int = 0
    load_cost_ms: float = 0.0

    @property
    def interval_variance(self) -> float:
        return self.m2 / (self.intervals - 1) if self.intervals > 1 else 0.0

    @property
    def regularity(self) -> float:
        """1 for perfectly periodic access, towards 0 as intervals scatter."""
        if self.intervals < 2 or self.mean_interval <= 0:
            return 0.0
        cv = math.sqrt(self.interval_variance) / self.mean_interval
        return max(0.0, 1.0 - cv)

    def frequency_per_hour(self, now: float) -> float:
        span = max(now - self.first, 1.0)
        return self.count * 3600.0 / span


@dataclass(frozen=True, slots=True)
class Cacheability:
    score: float
    reason: str


class IntelligentPolicy:
    """Keeps the statistics and answers admission, TTL and priority questions."""

    name = "intelligent"

    def __init__(
        self,
        *,
        track: int = 100_000,
        min_ttl: float = 60.0,
        max_ttl: float = 3600.0,
        admit_threshold: float = 0.3,
        decay_every: int = 200_000,
    ) -> None:
        self.stats: OrderedDict[str, AccessStats] = OrderedDict()
        self.track = track
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.admit_threshold = admit_threshold
        self.decay_every = decay_every
        self.clock = 0.0  # GDSF inflation: the priority of the last victim
        self._events = 0

    # -- statistics ---------------------------------------------------------------------
    def record_access(self, key: str, now: float | None = None) -> AccessStats:
        now = time.monotonic() if now is None else now
        stats = self.stats.get(key)
        if stats is None:
            stats = AccessStats(first=now, last=now)
            self.stats[key] = stats
            if len(self.stats) > self.track:
                self.stats.popitem(last=False)
        else:
            interval = now - stats.last
            stats.intervals += 1
            delta = interval - stats.mean_interval
            stats.mean_interval += delta / stats.intervals
            stats.m2 += delta * (interval - stats.mean_interval)
            stats.last = now
            self.stats.move_to_end(key)
        stats.count += 1.0
        self._events += 1
        if self._events >= self.decay_every:
            self._decay()
        return stats

    def record_load(self, key: str, size: int, cost_ms: float) -> None:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.record_access(key)
        stats.size = size
        # Smooth: one slow load should not mark a key expensive forever.
        stats.load_cost_ms = (
            cost_ms if stats.load_cost_ms == 0 else (0.7 * stats.load_cost_ms + 0.3 * cost_ms)
        )

    def _decay(self) -> None:
        # Halve every count so that yesterday's hot keys cool down (frequency aging).
        self._events = 0
        for stats in self.stats.values():
            stats.count /= 2.0

    # -- the seed's three decisions ------------------------------------------------------
    def cacheability(self, key: str, size: int, now: float | None = None) -> Cacheability:
        stats = self.stats.get(key)
        if stats is None or stats.count <= 1:
            return Cacheability(0.5, "NO_HISTORY")
        now = time.monotonic() if now is None else now
        score = 0.5
        reasons = []
        if stats.frequency_per_hour(now) > 10 / 24:  # the seed's "10 a day"
            score += 0.3
            reasons.append("FREQUENT")
        if stats.regularity > 0.8:
            score += 0.2
            reasons.append("REGULAR")
        if size < 1024:
            score += 0.1
            reasons.append("SMALL")
        elif size > 10 * 1024:
            score -= 0.2
            reasons.append("LARGE")
        if stats.load_cost_ms > 1.0:
            score += 0.2
            reasons.append("COSTLY")
        return Cacheability(max(0.0, min(1.0, score)), "+".join(reasons) or "PLAIN")

    def ttl(self, key: str, cap: float) -> float:
        stats = self.stats.get(key)
        if stats is None or stats.intervals < 2:
            return min(cap, self.max_ttl)
        mean = stats.mean_interval
        if math.sqrt(stats.interval_variance) < mean * 0.1:
            ttl = max(mean * 2.0, 300.0)
        else:
            ttl = max(mean * 0.5, 60.0)
        # Within bounds, and never longer than the caller allowed.
        return min(cap, max(self.min_ttl, min(ttl, self.max_ttl)))

    def priority(self, key: str, size: int) -> float:
        stats = self.stats.get(key)
        frequency = stats.count if stats else 1.0
        cost = max(stats.load_cost_ms, 0.05) if stats else 0.05
        return self.clock + frequency * cost / max(size, 64) * 1024

    def evicted(self, priority: float) -> None:
        self.clock = max(self.clock, priority)

    def admit(self, key: str, size: int, victim: str | None) -> bool:
        """Whether ``key`` may enter; ``victim`` is who would leave to make room."""
        if self.cacheability(key, size).score < self.admit_threshold:
            return False
        if victim is None:
            return True
        mine = self.stats.get(key)
        theirs = self.stats.get(victim)
        return (mine.count if mine else 1.0) > (theirs.count if theirs else 0.0)
