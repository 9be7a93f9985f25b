//! Capture: the process launcher, the native protocol, the allocation-server
//! compatibility listener, importers.
//!
//! Data flows one way: sources (native socket connections, the compat
//! listener, importers) -> [`ingest`] (per-source id remapping, merge by
//! timestamp) -> one writer thread owning the `TraceWriter`.
//!
//! # Modules
//!
//! - [`protocol`]: the native wire protocol (`PROTOCOL.md`): constants, frame
//!   header, encoder (used by tests and the load generator) and the validating
//!   decoder.
//! - [`ingest`]: the ingest API every source uses, the merge stage and the
//!   writer thread.
//! - [`stats`]: live per-device accounting (what `serve` prints every 10 s and
//!   the `record` status line shows).
//! - [`listener`]: the Unix-socket listener (peer-credential check, one reader
//!   thread per connection).
//! - [`session`]: [`Session`] = writer thread + ingest + listener; `record` and
//!   `serve` both run one.
//! - [`launcher`]: private 0700 directory, bundled Python client, starting CMD
//!   with the right environment, signal forwarding, waiting.
//!
//! # The ingest API (contract for other sources: compat listener, `serve`, importers)
//!
//! ```ignore
//! use ttalloc_recorder::ingest::{IngestHandle, SourceInfo, Source};
//!
//! let handle: IngestHandle = session.ingest();          // Clone + Send + Sync
//! let mut src: Source = handle.register(SourceInfo {    // (a) register (emits ProcessStart)
//!     pid: 1234, ppid: 1, argv: vec!["python".into(), "t.py".into()],
//!     client: "alloc-server-compat".into(), ts: None,   // ts None = now
//! })?;
//! // (c) interning, local to this source; ids are remapped to trace ids by
//! //     the writer thread. StringId(0) is "" and SiteId(0) the unknown site.
//! let name: StringId = src.intern_string("ttnn.matmul");
//! let site: SiteId = src.intern_stack(&[("alloc", "buf.py", 10), ("<module>", "t.py", 1)]);
//! // Unique trace-wide ids for this source's buffers / programs:
//! let buf: BufferId = src.buffer_id(0x1000 /* any local u64 < 2^40 */);
//! let prog: ProgramId = src.program_id(7);
//! // (b) events (pid is overwritten with the source's pid; ids must be ones this
//! //     source interned, else Err(IngestError::Protocol)). Buffered; flushed in
//! //     batches, on `flush()`, and on `end()`.
//! src.send(Event { ts, pid: Pid(0), kind: EventKind::BufferAlloc { .. } })?;
//! src.flush()?;
//! // (d) end of source (emits ProcessExit { status }); also done on drop with status None.
//! src.end(Some(0));
//! ```
//!
//! Within one source, events keep the order they were sent in. Sources are
//! interleaved by timestamp within a bounded reorder window (250 ms by
//! default; earlier when the merge holds 65,536 events).
//!
//! `handle.await_exit_status(pid)` / `handle.exit_status(pid, status)`: a
//! source of `pid` that ends without a status has its `ProcessExit` held back
//! until the status is reported (the launcher does this for CMD from waitpid;
//! status = exit code or -signal), or until the session ends.
//!
//! Live statistics: `handle.stats()` / `session.stats()` return a
//! [`stats::LiveSnapshot`] (events recorded, sources connected, and per device
//! live buffers, live bytes by buffer type (DRAM, L1, L1_SMALL, TRACE), CB
//! bytes). [`stats::LiveSnapshot::server_lines`] formats the per-device lines
//! the original allocation server printed.
//!
//! # Session (what `record` and `serve` run)
//!
//! ```ignore
//! let mut opts = SessionOptions::new(output_path, argv);   // private 0700 dir + socket + Python client
//! opts.socket = SocketSpec::Path("/tmp/ttalloc.sock".into()); // for `serve`: fixed path (stale one replaced,
//!                                                            // live one = SessionError::SocketInUse)
//! opts.warn = Arc::new(|m| eprintln!("ttalloc: warning: {m}")); // where warnings go (the default)
//! let session = Session::start(opts)?;
//! session.socket_path(); session.env();        // what clients need
//! let h = session.ingest();                    // for extra sources
//! // ... run until told to stop ...
//! let summary: Summary = session.finish(Duration::from_secs(2))?; // stop accepting, drain (grace), seal
//! // Summary { output, snapshot: LiveSnapshot, events_written, write_error }
//! ```
//!
//! `launcher::run_command(&session, &cmd, grace, tick, on_tick)` starts CMD with the
//! session's environment, forwards SIGINT/SIGTERM/SIGHUP (a terminal's Ctrl-C
//! already reaches CMD's process group and is not sent twice), waits for it,
//! then waits up to `grace` for the processes it left running (the recorder is
//! a child subreaper), and returns CMD's status.
//!
//! Errors: [`session::SessionError`] (output exists / cannot be created,
//! socket in use), [`launcher::LaunchError`] (command not found ...). A write
//! failure during recording does not stop the session: it is reported once
//! through the warning sink and in [`Summary::write_error`]; the blocks sealed
//! before it stay readable.

pub mod client_bundle;
pub mod ingest;
pub mod launcher;
pub mod listener;
pub mod protocol;
pub mod session;
pub mod stats;
pub mod wake;

pub use ingest::{IngestError, IngestHandle, Source, SourceInfo};
pub use session::{Session, SessionOptions, SocketSpec, Summary};
pub use stats::{DeviceStats, LiveSnapshot};
pub mod compat;
pub mod import;
