//! End-to-end tests: replay (to be written).
