//! The standard synthetic benchmark workload (deterministic) and helpers to find the scenario workloads.

pub mod synth;
