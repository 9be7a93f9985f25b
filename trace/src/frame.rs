//! One zstd frame holds exactly one record: a 32-byte envelope followed by an
//! rkyv archive. This module builds and opens envelopes and (de)compresses
//! frames; it knows nothing about what the archives contain.

use crate::checksum::hash64;
use rkyv::util::AlignedVec;
use zstd::zstd_safe;

pub const RECORD_MAGIC: [u8; 4] = *b"TTAR";
pub const ENVELOPE_LEN: usize = 32;
/// Largest decompressed record a reader accepts (a sanity bound so a damaged
/// content-size field cannot make it allocate gigabytes).
pub const MAX_RECORD_LEN: u64 = 1 << 30;

/// What a record holds (the envelope's `kind` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RecordKind {
    Header = 1,
    Intern = 2,
    Block = 3,
    Footer = 4,
    /// What a derived trace was made from (format 2.1; see `provenance`).
    Provenance = 5,
    /// Allocator state after a block (format 2.2; see `checkpoint`).
    Checkpoint = 6,
    /// Where the checkpoints are: the data frame before the footer (2.2).
    CheckpointIndex = 7,
    /// An event block's timestamps, the frame after the block's (2.6).
    Times = 8,
}

impl RecordKind {
    pub fn from_u32(v: u32) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::Header),
            2 => Some(RecordKind::Intern),
            3 => Some(RecordKind::Block),
            4 => Some(RecordKind::Footer),
            5 => Some(RecordKind::Provenance),
            6 => Some(RecordKind::Checkpoint),
            7 => Some(RecordKind::CheckpointIndex),
            8 => Some(RecordKind::Times),
            _ => None,
        }
    }
}

/// Appends envelope + payload to `out` (cleared first).
pub fn build_record(kind: RecordKind, major: u16, minor: u16, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(ENVELOPE_LEN + payload.len());
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&major.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    out.extend_from_slice(&(kind as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let sum = record_checksum(&out[0..24], payload);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The checksum covers the first 24 envelope bytes and the payload.
fn record_checksum(envelope: &[u8], payload: &[u8]) -> u64 {
    hash64(payload) ^ hash64(envelope).rotate_left(17)
}

/// An opened envelope. `kind` is raw so a reader can skip kinds it does not know.
pub struct Record<'a> {
    pub major: u16,
    pub minor: u16,
    pub kind: u32,
    pub payload: &'a [u8],
}

/// Checks magic, length and checksum; the payload starts 32 bytes into `bytes`
/// so it keeps the buffer's 16-byte alignment.
pub fn open_record(bytes: &[u8]) -> Result<Record<'_>, String> {
    if bytes.len() < ENVELOPE_LEN {
        return Err(format!(
            "record of {} bytes is shorter than its 32-byte envelope",
            bytes.len()
        ));
    }
    if bytes[0..4] != RECORD_MAGIC {
        return Err("record magic is not TTAR".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let len = u64_at(16);
    if len != (bytes.len() - ENVELOPE_LEN) as u64 {
        return Err(format!(
            "record says {len} payload bytes but the frame holds {}",
            bytes.len() - ENVELOPE_LEN
        ));
    }
    let payload = &bytes[ENVELOPE_LEN..];
    if record_checksum(&bytes[0..24], payload) != u64_at(24) {
        return Err("record checksum mismatch".into());
    }
    Ok(Record {
        major: u16_at(4),
        minor: u16_at(6),
        kind: u32_at(8),
        payload,
    })
}

/// The shortest match the writer's zstd looks for (zstd's longest choice;
/// level 3 would take 5). A block's byte planes hold low bytes that are
/// noise (timestamps, addresses): 5- and 6-byte matches in them save a
/// byte or two each, and each costs the reader a sequence to decode.
/// Synthetic benchmark, 1M events at level 3: 2.99 -> 2.93 bytes/event,
/// a scan 4.6% fewer instructions (zstd's sequences 52.6 -> 39.0 per
/// event), a replay 2.2% fewer; W (repaired) 836,208 -> 834,324 bytes; the
/// writer no slower. A reader sees ordinary zstd frames.
const MIN_MATCH: u32 = 7;

/// Levels whose own minimum match is at least 4 (zstd's fast, dfast,
/// greedy and lazy strategies), which `MIN_MATCH` replaces; higher levels
/// keep theirs (their optimal parsers use shorter matches well).
const FAST_LEVELS: i32 = 9;

/// Compresses records into independent zstd frames (with content size and
/// the zstd checksum, so `zstd -d` verifies them too).
pub struct FrameCompressor {
    cctx: zstd_safe::CCtx<'static>,
    sequences: crate::zstd_sequences::SequenceCoder,
}

impl FrameCompressor {
    pub fn new(level: i32) -> std::io::Result<Self> {
        use zstd_safe::CParameter;
        let mut cctx = zstd_safe::CCtx::create();
        for p in [
            CParameter::CompressionLevel(level),
            CParameter::ChecksumFlag(true),
            CParameter::ContentSizeFlag(true),
        ] {
            cctx.set_parameter(p).map_err(zstd_error)?;
        }
        let min_match = (level <= FAST_LEVELS).then_some(MIN_MATCH);
        if let Some(m) = min_match {
            cctx.set_parameter(CParameter::MinMatch(m))
                .map_err(zstd_error)?;
        }
        let sequences = crate::zstd_sequences::SequenceCoder::new(level, min_match)?;
        Ok(FrameCompressor { cctx, sequences })
    }

    /// Compresses `record` into `out` (cleared first) as one frame whose zstd blocks end at the
    /// offsets `cuts` (ascending, inside the record): each segment gets its
    /// own entropy tables, so byte planes of different statistics (a
    /// column's noisy low bytes, another's near-constant ones) are not coded
    /// with one table. Matches still reach back across cuts, and only those
    /// worth a sequence are kept (`match_filter`). The frame is an ordinary
    /// zstd frame: readers see no difference. If zstd's sequence API fails
    /// (its match finder is documented as not always succeeding), the frame
    /// is compressed as a stream, keeping every match.
    pub fn compress_segmented(
        &mut self,
        record: &[u8],
        cuts: &[usize],
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        use zstd_safe::zstd_sys::ZSTD_EndDirective;
        if self.sequences.compress(record, cuts, out)? {
            return Ok(());
        }
        out.clear();
        // A flush adds at most a block header and an empty block per cut.
        out.reserve(zstd_safe::compress_bound(record.len()) + 16 * (cuts.len() + 1));
        self.cctx
            .reset(zstd_safe::ResetDirective::SessionOnly)
            .map_err(zstd_error)?;
        self.cctx
            .set_pledged_src_size(Some(record.len() as u64))
            .map_err(zstd_error)?;
        let mut output = zstd_safe::OutBuffer::around(out);
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&record.len())) {
            let last = end == record.len();
            let directive = if last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_flush
            };
            let mut input = zstd_safe::InBuffer::around(&record[start..end]);
            loop {
                let left = self
                    .cctx
                    .compress_stream2(&mut output, &mut input, directive)
                    .map_err(zstd_error)?;
                if left == 0 {
                    break;
                }
                if output.pos() == output.capacity() {
                    return Err(std::io::Error::other("zstd: output buffer too small"));
                }
            }
            start = end;
            if last {
                break;
            }
        }
        Ok(())
    }
}

fn zstd_error(code: usize) -> std::io::Error {
    std::io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)))
}

/// Reusable decompression state.
pub struct FrameDecompressor {
    dctx: zstd_safe::DCtx<'static>,
}

impl Default for FrameDecompressor {
    fn default() -> Self {
        let mut dctx = zstd_safe::DCtx::create();
        // The record checksum (checked by `open_record`) covers every
        // decompressed byte, so zstd's own XXH64 of the same bytes would be a
        // second pass for nothing (`zstd -d` still checks it). Setting this
        // parameter cannot fail on a valid context; if it did, zstd would just
        // keep checking.
        let _ = dctx.set_parameter(zstd_safe::DParameter::ForceIgnoreChecksum(true));
        FrameDecompressor { dctx }
    }
}

impl FrameDecompressor {
    /// Decompresses exactly one frame (`frame` is its full compressed bytes)
    /// into `out`, which is resized to the content size.
    pub fn decompress(&mut self, frame: &[u8], out: &mut AlignedVec<16>) -> Result<(), String> {
        let size = match zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) => n,
            Ok(None) => return Err("zstd frame has no content size".into()),
            Err(_) => return Err("not a zstd frame (bad frame header)".into()),
        };
        if size > MAX_RECORD_LEN {
            return Err(format!(
                "zstd frame claims {size} bytes of content, more than the 1 GiB limit"
            ));
        }
        let size = size as usize;
        // zstd writes every byte into room not zeroed first (zeroing a
        // buffer that grew, or one handed to a kept record, cost as much as
        // copying it).
        out.clear();
        out.reserve(size);
        let n = self
            .dctx
            .decompress(&mut SpareRoom(out), frame)
            .map_err(|code| format!("zstd: {}", zstd_safe::get_error_name(code)))?;
        if n != size {
            return Err(format!(
                "zstd frame decoded to {n} bytes, header said {size}"
            ));
        }
        Ok(())
    }
}

/// A buffer's room past its length as zstd's output: zstd writes there
/// (no byte is read before it is written) and the length becomes what it
/// wrote.
struct SpareRoom<'a>(&'a mut AlignedVec<16>);

// SAFETY: `as_slice` covers the buffer's initialized bytes (its length)
// only, `capacity` and `as_mut_ptr` are its allocation's, and
// `filled_until(n)` is called (by zstd-safe's `write_from`) only with the
// count zstd returned, the bytes it wrote from `as_mut_ptr` into at most
// `capacity` bytes: the first `n` bytes are initialized when the length is
// set.
unsafe impl zstd_safe::WriteBuf for SpareRoom<'_> {
    fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn filled_until(&mut self, n: usize) {
        // SAFETY: see the impl's comment: `n` bytes from the start are
        // initialized and `n` is at most the capacity.
        unsafe { self.0.set_len(n) }
    }
}

/// Decompression state and buffer, pooled so `&self` methods can decode.
#[derive(Default)]
pub struct Scratch {
    pub dctx: FrameDecompressor,
    pub buf: AlignedVec<16>,
    /// A frame's compressed bytes, read from the file (see `TraceReader`).
    pub input: Vec<u8>,
    /// A block's times record (2.6), decompressed beside the block's.
    pub times: AlignedVec<16>,
}

/// Compressed size of the zstd (or skippable) frame at the start of `bytes`.
pub fn frame_len(bytes: &[u8]) -> Option<usize> {
    zstd_safe::find_frame_compressed_size(bytes)
        .ok()
        .filter(|&n| n > 0 && n <= bytes.len())
}

/// Whether the frame at the start of `bytes` is a skippable frame (magic 0x184D2A5?).
pub fn is_skippable(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && (u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) & 0xFFFF_FFF0)
            == 0x184D_2A50
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_damage() {
        let mut rec = Vec::new();
        build_record(RecordKind::Block, 1, 0, b"hello world", &mut rec);
        let r = open_record(&rec).unwrap();
        assert_eq!(
            (r.major, r.minor, r.kind, r.payload),
            (1, 0, 3, &b"hello world"[..])
        );
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x10;
            assert!(open_record(&bad).is_err(), "byte {i}");
        }
        let mut c = FrameCompressor::new(3).unwrap();
        let mut z = Vec::new();
        // Cut into zstd blocks or not, the frame decodes to the record.
        let mut cut = Vec::new();
        c.compress_segmented(&rec, &[8, 20, 33], &mut cut).unwrap();
        let mut back = AlignedVec::<16>::new();
        FrameDecompressor::default()
            .decompress(&cut, &mut back)
            .unwrap();
        assert_eq!(&back[..], &rec[..]);
        c.compress_segmented(&rec, &[], &mut z).unwrap();
        assert_eq!(frame_len(&z), Some(z.len()));
        let mut d = FrameDecompressor::default();
        let mut out = AlignedVec::<16>::new();
        d.decompress(&z, &mut out).unwrap();
        assert_eq!(&out[..], &rec[..]);
        assert!(d.decompress(&z[..z.len() - 1], &mut out).is_err());
    }
}
