//! Reading a block's times record (format 2.6: the frame after the block's).

use crate::frame::{open_record, FrameDecompressor, RecordKind};
use crate::records::ArchivedTimesRec;
use crate::FORMAT_MAJOR;
use rancor::BoxedError;
use rkyv::util::AlignedVec;

/// Decompresses `frame` into `buf` and checks that it holds a times
/// record of this major version; the record is then checked against its
/// block by the decoder.
pub(super) fn times_record<'b>(
    dctx: &mut FrameDecompressor,
    frame: &[u8],
    buf: &'b mut AlignedVec<16>,
) -> Result<&'b ArchivedTimesRec, String> {
    dctx.decompress(frame, buf)?;
    let rec = open_record(buf)?;
    if rec.major != FORMAT_MAJOR {
        return Err(format!(
            "record of format {}.{} in a trace of format {FORMAT_MAJOR}.x",
            rec.major, rec.minor
        ));
    }
    if rec.kind != RecordKind::Times as u32 {
        return Err(format!(
            "frame holds a record of kind {}, not a block's times",
            rec.kind
        ));
    }
    rkyv::access::<ArchivedTimesRec, BoxedError>(rec.payload).map_err(|e| format!("archive: {e}"))
}
