//! Where a trace's bytes are: mapped, or read into memory where they
//! cannot be mapped.

use memmap2::Mmap;

/// The file's bytes: mapped, or read into memory where it cannot be mapped
/// (a file system without mmap, say).
///
/// A mapped trace's event blocks are not read through the map but with
/// `pread` into a reused buffer (`TraceReader::frame_bytes`): pages of the
/// map a scan has read count in the process's resident memory until they
/// are dropped, and the kernel maps the 64 KiB-aligned window around every
/// fault: dropping what a block spans after decoding it left the tail of the
/// block before it that the block's first fault mapped back in (20 MB of
/// a 50M-event trace by the end of a replay, which peaked at 51 MB against
/// 33 MB at 10M events). Read into a buffer, a block costs one copy from the
/// page cache instead of faults and `madvise` calls, and a replay's
/// resident memory no longer grows with the trace's length.
pub(super) enum Contents {
    Mapped(Mmap, std::fs::File),
    Read(Vec<u8>),
}

impl std::ops::Deref for Contents {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Contents::Mapped(m, _) => m,
            Contents::Read(v) => v,
        }
    }
}

/// Reads the whole file when mapping it failed with `map_err`; a file too
/// large for the memory the process may use is an error that says so.
pub(super) fn read_unmapped(
    file: &mut std::fs::File,
    len: u64,
    map_err: std::io::Error,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    let fits = usize::try_from(len)
        .ok()
        .is_some_and(|n| buf.try_reserve_exact(n).is_ok());
    if !fits {
        return Err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!(
                "cannot map the {len}-byte trace into memory ({map_err}) nor read it into memory: \
                 the process may not use that much address space (see `ulimit -v`)"
            ),
        ));
    }
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Drops this process's mapped pages of the whole pages in `[start, end)`.
pub(super) fn drop_mapped(map: &Contents, start: u64, end: u64) {
    let Contents::Mapped(map, _) = map else {
        return;
    };
    #[cfg(unix)]
    {
        const PAGE: u64 = 4096;
        let start = start.div_ceil(PAGE) * PAGE;
        let end = end.min(map.len() as u64) / PAGE * PAGE;
        if end > start {
            // SAFETY: the map is a read-only mapping of a file; MADV_DONTNEED
            // only drops this process's copy of the pages, and any later read
            // (here or in another thread) faults them in again from the file
            // with the same contents. No reference sees the memory change.
            // Errors (e.g. a larger page size) just leave the pages mapped.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start as usize,
                    (end - start) as usize,
                )
            };
        }
    }
    #[cfg(not(unix))]
    let _ = (start, end);
}
