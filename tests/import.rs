//! End-to-end tests: import (to be written).
