//! Integration tests of redisq live in `tests/`; this library is empty on purpose.
