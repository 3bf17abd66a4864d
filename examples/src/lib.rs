//! Runnable examples of redisq live in `examples/`; see `examples/README.md`.
