//! Bounds-checked little-endian reads over one frame payload.

/// Little-endian cursor over one payload; every read is bounds-checked.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "payload ends after {} bytes, {} more needed at payload offset {}",
                self.buf.len(),
                n,
                self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(super) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(super) fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(super) fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    pub(super) fn str(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32().map_err(|e| format!("{what} length: {e}"))? as usize;
        let b = self.take(n).map_err(|e| format!("{what}: {e}"))?;
        String::from_utf8(b.to_vec()).map_err(|e| format!("{what} is not valid UTF-8: {e}"))
    }
    pub(super) fn rest(&self) -> usize {
        self.buf.len() - self.pos
    }
}
