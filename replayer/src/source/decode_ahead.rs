//! Decoding blocks ahead of their consumer on their own threads, with the
//! decoded-block buffers reused so memory stays at a few blocks.

use crate::error::Result;
use ttalloc_trace::TraceReader;

/// A hook run on the decoding thread on block `i` once decoded.
type BlockHook<'a, B> = &'a mut (dyn FnMut(usize, &B) + Send);

/// Decoded blocks a decoder thread queues for the consumer beyond the one
/// it holds finished. None: a decoder hands its block over when the
/// consumer takes it and then decodes the next one while the consumer
/// works, so two buffers per decoder are in flight (each one a whole
/// decoded block: 3.5 MB of the synthetic trace, 5 MB of workload W's); the
/// consumer, a replay, is the slower side, so a queue would only hold
/// memory.
const QUEUED: usize = 0;

/// Where `decode_ahead` gets the buffers it decodes into and where they go
/// when the scan is over.
#[derive(Clone, Copy)]
pub(super) struct Buffers<'a, B> {
    pub(super) take: &'a (dyn Fn() -> B + Sync),
    pub(super) give: &'a (dyn Fn(B) + Sync),
}

impl<B: Default> Buffers<'_, B> {
    /// New buffers, freed at the end.
    pub(super) const NEW: Self = Buffers {
        take: &B::default,
        give: &drop,
    };
}

/// Decodes blocks on `decoders` threads (block i on thread i % decoders)
/// with `decode`, while `f(i, block)` consumes them in order on the calling
/// thread. Buffers go back to their decoder to be reused, so memory stays at
/// a few blocks; they come from `buffers` and go back there at the end.
/// `pre`, if any, runs on the decoder thread after each block is decoded
/// (only with one decoder, so that it sees the blocks in order).
pub(super) fn decode_ahead<B, D>(
    reader: &TraceReader,
    decoders: usize,
    decode: D,
    buffers: Buffers<'_, B>,
    mut pre: Option<BlockHook<'_, B>>,
    f: &mut dyn FnMut(usize, &B) -> Result<()>,
) -> Result<()>
where
    B: Default + Send,
    D: Fn(&TraceReader, usize, &mut B) -> ttalloc_trace::Result<()> + Sync,
{
    assert!(
        pre.is_none() || decoders == 1,
        "an in-order hook needs one decoder"
    );
    use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
    let n = reader.blocks().len();
    let decoders = decoders.min(n);
    let decode = &decode;
    std::thread::scope(|scope| {
        let mut full: Vec<Receiver<ttalloc_trace::Result<B>>> = Vec::new();
        let mut empty: Vec<SyncSender<B>> = Vec::new();
        let mut threads = Vec::new();
        for t in 0..decoders {
            let (full_tx, full_rx) = sync_channel(QUEUED);
            let (empty_tx, empty_rx) = sync_channel::<B>(QUEUED + 2);
            full.push(full_rx);
            empty.push(empty_tx);
            let mut pre = pre.take();
            // The thread hands back its queue of used buffers.
            threads.push(scope.spawn(move || {
                for i in (t..n).step_by(decoders) {
                    let mut buf = empty_rx.try_recv().unwrap_or_else(|_| (buffers.take)());
                    let r = decode(reader, i, &mut buf).map(|()| buf);
                    if let (Some(pre), Ok(block)) = (pre.as_mut(), r.as_ref()) {
                        pre(i, block);
                    }
                    let failed = r.is_err();
                    // The consumer hung up (an error downstream): stop.
                    if full_tx.send(r).is_err() || failed {
                        break;
                    }
                }
                empty_rx
            }));
        }
        for i in 0..n {
            let t = i % decoders;
            let buf = match full[t].recv() {
                Ok(r) => r?,
                Err(_) => break,
            };
            f(i, &buf)?;
            use std::sync::mpsc::TrySendError::{Disconnected, Full};
            if let Err(Full(buf) | Disconnected(buf)) = empty[t].try_send(buf) {
                (buffers.give)(buf);
            }
        }
        for thread in threads {
            if let Ok(used) = thread.join() {
                used.try_iter().for_each(buffers.give);
            }
        }
        Ok(())
    })
}
