//! Whole-trace scans that decode blocks on every core: blocks are decoded
//! ahead on worker threads (block `i` on worker `i % workers`, a few blocks
//! ahead each) while the caller's callback sees them in order on the
//! calling thread. Memory stays at a few blocks per worker: decoded buffers
//! go back to their worker to be reused.

use crate::decode::BlockColumns;
use crate::reader::TraceReader;
use crate::Result;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Blocks a worker decodes ahead of the consumer.
const AHEAD: usize = 2;

/// Most workers a scan starts (beyond this the consumer is the bottleneck).
const MAX_WORKERS: usize = 8;

/// Worker threads a scan of `blocks` blocks uses: one per available core,
/// none (decode on the calling thread) on one core or for one block.
pub fn scan_workers(blocks: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || blocks < 2 {
        0
    } else {
        cores.min(MAX_WORKERS).min(blocks)
    }
}

impl TraceReader {
    /// Decodes every block into columns and calls `f(block index, columns)`
    /// in block order, decoding ahead on every available core (see
    /// [`scan_workers`]); stops at the first error, a block's or `f`'s.
    pub fn scan_columns<F>(&self, f: F) -> Result<()>
    where
        F: FnMut(usize, &BlockColumns) -> Result<()>,
    {
        self.scan_columns_on(scan_workers(self.blocks().len()), f)
    }

    /// [`TraceReader::scan_columns`] with `workers` decoding threads (0:
    /// every block decoded on the calling thread).
    pub fn scan_columns_on<F>(&self, workers: usize, mut f: F) -> Result<()>
    where
        F: FnMut(usize, &BlockColumns) -> Result<()>,
    {
        let n = self.blocks().len();
        let workers = workers.min(n);
        if workers == 0 {
            let mut cols = BlockColumns::default();
            for i in 0..n {
                self.decode_columns(i, &mut cols)?;
                f(i, &cols)?;
            }
            return Ok(());
        }
        std::thread::scope(|scope| {
            let mut decoded: Vec<Receiver<Result<BlockColumns>>> = Vec::new();
            let mut returned: Vec<SyncSender<BlockColumns>> = Vec::new();
            for w in 0..workers {
                let (done_tx, done_rx) = sync_channel(AHEAD);
                let (back_tx, back_rx) = sync_channel::<BlockColumns>(AHEAD + 1);
                decoded.push(done_rx);
                returned.push(back_tx);
                scope.spawn(move || {
                    for i in (w..n).step_by(workers) {
                        let mut cols = back_rx.try_recv().unwrap_or_default();
                        let r = self.decode_columns(i, &mut cols).map(|()| cols);
                        let failed = r.is_err();
                        // The consumer stopped (an error): stop too.
                        if done_tx.send(r).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            for i in 0..n {
                let w = i % workers;
                let cols = match decoded[w].recv() {
                    Ok(r) => r?,
                    Err(_) => break, // unreachable: a worker sends every block or an error
                };
                f(i, &cols)?;
                let _ = returned[w].try_send(cols);
            }
            Ok(())
        })
    }
}
