"""Multi-level caching (seed: 다단계 캐싱, 지능형 캐시 전략): L1 memory, L2 Redis, L3 database."""
