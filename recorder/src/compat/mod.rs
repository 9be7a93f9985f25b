//! Allocation-server compatibility: ttalloc listens where tt-metal's
//! allocation client (memory-monitor branch) connects,
//! `/tmp/tt_allocation_server.sock`, speaks its 112-byte protocol, records
//! what it says, and answers QUERY / DEVICE_INFO_QUERY / DUMP_REMAINING the
//! way `allocation_server_poc` does, so `allocation_monitor_client` keeps
//! working against ttalloc.
//!
//! - [`message`]: the 112-byte message.
//! - [`stream`]: the stream decoder, reading messages in place, that detects
//!   misframing (type out of range, non-zero padding, a 128- or 72-byte
//!   struct) with the byte offset and the likely cause.
//! - [`state`]: the server's bookkeeping (ref-counted (device, address) keys,
//!   per-device counters, unknown frees, CB and kernel messages, dead-process
//!   clean-up) and the trace events each message means. Read its doc for the
//!   exact semantics.
//! - [`output`]: where events go: the recorder core's ingest handle, or any
//!   event sink.
//! - [`listener`]: the socket (stale file replaced, a live server's socket
//!   refused naming its process, removed on exit) and the connection threads.
//! - [`signals`]: a stop flag raised by SIGINT/SIGTERM (for `serve`).
//!
//! Timestamps are the recorder's clock when a message is read (the FREE
//! messages of the C++ client carry none). Compat events have no call site
//! (`SiteId::UNKNOWN`): the protocol carries no stack.
//!
//! Wiring for `record --compat [--compat-socket PATH] [--compat-types T]`:
//! ```ignore
//! let compat = CompatListener::start_ingest(path, numbering, session.ingest())?;
//! // ... run CMD ...
//! let report = compat.stop();   // before session.finish(..)
//! ```

mod conn;
pub mod listener;
pub mod message;
mod numbering;
pub mod output;
mod process_table;
pub mod signals;
pub mod state;
pub mod stream;

pub use conn::pid_alive;
pub use listener::{
    current_uid, peer_cred, CompatError, CompatListener, CompatOptions, CompatReport,
    DEFAULT_SOCKET,
};
pub use message::{Message, MsgType, MESSAGE_SIZE};
pub use output::{CompatOutput, IngestOutput, ProcessInfo, ProcessOutput, SinkOutput};
pub use state::{Numbering, Registry};
pub use stream::{Misframe, StreamDecoder};

#[cfg(test)]
mod tests;
