//! End-to-end tests: compat (to be written).
