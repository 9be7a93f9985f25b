//! Why a replay could not run (bad input or bad options — exit status 2).

use ttalloc_model::DeviceId;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] ttalloc_trace::TraceError),
    #[error("device {device}: {message}")]
    DeviceConfig { device: DeviceId, message: String },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = ReplayError> = std::result::Result<T, E>;
