//! One module per subcommand, each with its clap `Args` and a `run`.

pub mod cat;
pub mod diff;
mod empty_capture;
pub mod export;
pub mod import;
pub mod info;
pub mod minimize;
pub mod record;
pub mod repair;
pub mod replay;
pub mod report;
pub mod repro;
pub mod serve;
