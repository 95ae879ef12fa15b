"""Event processing (seed: 이벤트 처리 최적화): batch and stream processors, ephemeral
fan-out, consumer checkpoints, and Redis Streams across instances."""
