//! End-to-end tests: trace_cli (to be written).
