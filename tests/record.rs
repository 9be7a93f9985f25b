//! End-to-end tests: record (to be written).
