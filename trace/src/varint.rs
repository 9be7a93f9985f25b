//! LEB128 varints and zigzag: the pid, misc and ext columns of event blocks.

#[inline]
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A read cursor over one column. Reading past the end or an over-long
/// varint is an error, never a panic.
#[derive(Clone, Copy)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun;

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub fn is_at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    #[inline]
    pub fn byte(&mut self) -> Result<u8, Overrun> {
        let b = *self.bytes.get(self.pos).ok_or(Overrun)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, Overrun> {
        let b = *self.bytes.get(self.pos).ok_or(Overrun)?;
        if b < 0x80 {
            self.pos += 1;
            return Ok(b as u64);
        }
        self.varint_multi()
    }

    /// Like [`Cursor::varint`] but without the one-byte shortcut, for values
    /// that are mostly several bytes long (addresses, sizes): the length is
    /// found arithmetically, so there is no branch on it to mispredict.
    #[inline(always)]
    pub fn varint_long(&mut self) -> Result<u64, Overrun> {
        self.varint_multi()
    }

    /// Multi-byte: with 8 bytes left, read a whole word and find the last
    /// byte from the continuation bits (values up to 56 bits).
    #[inline(always)]
    fn varint_multi(&mut self) -> Result<u64, Overrun> {
        if let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let stop = !w & 0x8080_8080_8080_8080;
            if stop != 0 {
                let len = stop.trailing_zeros() / 8 + 1;
                let w = w & (u64::MAX >> (64 - 8 * len));
                let mut v = w & 0x7f;
                v |= (w >> 1) & (0x7f << 7);
                v |= (w >> 2) & (0x7f << 14);
                v |= (w >> 3) & (0x7f << 21);
                v |= (w >> 4) & (0x7f << 28);
                v |= (w >> 5) & (0x7f << 35);
                v |= (w >> 6) & (0x7f << 42);
                v |= (w >> 7) & (0x7f << 49);
                self.pos += len as usize;
                return Ok(v);
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, Overrun> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = *self.bytes.get(self.pos).ok_or(Overrun)?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(Overrun);
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(Overrun);
            }
        }
    }

    #[inline]
    pub fn varint_u32(&mut self) -> Result<u32, Overrun> {
        u32::try_from(self.varint()?).map_err(|_| Overrun)
    }

    #[inline]
    pub fn zigzag(&mut self) -> Result<i64, Overrun> {
        Ok(unzigzag(self.varint()?))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Overrun> {
        let end = self.pos.checked_add(n).ok_or(Overrun)?;
        let s = self.bytes.get(self.pos..end).ok_or(Overrun)?;
        self.pos = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes() {
        let vals = [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut buf = Vec::new();
        for v in vals {
            put(&mut buf, v);
        }
        let mut c = Cursor::new(&buf);
        for v in vals {
            assert_eq!(c.varint().unwrap(), v);
        }
        assert!(c.is_at_end());
        assert_eq!(c.varint(), Err(Overrun));
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        // Every length, with and without 8 bytes of slack after it.
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) | 0x55] {
                for pad in [0usize, 9] {
                    let mut b = Vec::new();
                    put(&mut b, v);
                    let n = b.len();
                    b.resize(b.len() + pad, 0x80);
                    let mut c = Cursor::new(&b);
                    assert_eq!(c.varint().unwrap(), v, "{v:#x} pad {pad}");
                    assert_eq!(c.pos, n);
                }
            }
        }
        // 11 continuation bytes: too long.
        let bad = [0xffu8; 11];
        assert_eq!(Cursor::new(&bad).varint(), Err(Overrun));
    }
}
