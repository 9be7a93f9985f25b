//! Replay through the model: leak and accumulation analysis, bisect, reports.
