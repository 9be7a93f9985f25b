//! One module per subcommand, each with its clap `Args` and a `run`.

pub mod cat;
pub mod import;
pub mod info;
pub mod record;
pub mod repair;
pub mod replay;
pub mod serve;
