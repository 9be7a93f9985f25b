//! A streaming splitter for large JSON documents: it walks the top level by
//! hand and hands out one complete value at a time (one graph node, the
//! `devices` array) as a byte slice for `serde_json::from_slice`.
//!
//! Why not `serde_json::from_reader` with a visitor: it reads one byte per
//! `read` call (too slow for 100 MB/s) and reports line/column, not the byte
//! offset users need to find a broken node in a multi-gigabyte file. Here the
//! buffer holds at most the largest single value, so memory does not grow with
//! the file.

use std::io::{self, Read, Seek, SeekFrom};

/// Why the splitter stopped.
#[derive(Debug)]
pub enum ScanError {
    Io(io::Error),
    /// Bytes that are not the JSON structure expected at `offset`.
    Syntax {
        offset: u64,
        reason: String,
    },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

pub type ScanResult<T> = Result<T, ScanError>;

const INITIAL_BUF: usize = 1 << 20;

pub struct Scanner<R> {
    src: R,
    buf: Vec<u8>,
    /// First unconsumed byte of `buf`.
    start: usize,
    /// End of the valid bytes of `buf`.
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    pub fn new(src: R) -> Self {
        Scanner {
            src,
            buf: vec![0; INITIAL_BUF],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
        }
    }

    /// File offset of the next unconsumed byte.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Reads more bytes, keeping the unconsumed ones (moved to the front,
    /// growing the buffer if it is full of them). Returns false at end of file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let new_len = self.buf.len() * 2;
            self.buf.resize(new_len, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Skips a UTF-8 byte-order mark at the start of the file (Windows
    /// editors write one); offsets stay file offsets.
    pub fn skip_bom(&mut self) -> ScanResult<()> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        while self.offset() == 0 && self.end - self.start < BOM.len() {
            if !self.fill()? {
                break;
            }
        }
        if self.offset() == 0 && self.buf[self.start..self.end].starts_with(BOM) {
            self.start += BOM.len();
        }
        Ok(())
    }

    /// Skips whitespace and returns the next byte without consuming it
    /// (`None` at end of file).
    pub fn peek(&mut self) -> ScanResult<Option<u8>> {
        loop {
            while self.start < self.end {
                let b = self.buf[self.start];
                if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                    self.start += 1;
                } else {
                    return Ok(Some(b));
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes the byte `peek` returned.
    pub fn bump(&mut self) {
        debug_assert!(self.start < self.end);
        self.start += 1;
    }

    /// Expects `byte` (after whitespace) and consumes it.
    pub fn expect(&mut self, byte: u8, what: &str) -> ScanResult<()> {
        match self.peek()? {
            Some(b) if b == byte => {
                self.bump();
                Ok(())
            }
            Some(b) => Err(self.syntax(format!("expected {what}, found '{}'", printable(b)))),
            None => Err(self.syntax(format!("expected {what}, found the end of the file"))),
        }
    }

    pub fn syntax(&self, reason: String) -> ScanError {
        ScanError::Syntax {
            offset: self.offset(),
            reason,
        }
    }

    /// Finds the complete JSON value starting at the next non-blank byte,
    /// buffers all of it and returns it with its file offset. The value stays
    /// unconsumed until [`Scanner::consume`].
    pub fn value(&mut self) -> ScanResult<(u64, &[u8])> {
        let len = self.scan_value(true)?;
        let off = self.offset();
        Ok((off, &self.buf[self.start..self.start + len]))
    }

    /// Consumes `len` bytes returned by [`Scanner::value`].
    pub fn consume(&mut self, len: usize) {
        self.start += len;
    }

    /// Skips the next JSON value without keeping it in memory.
    pub fn skip_value(&mut self) -> ScanResult<()> {
        let len = self.scan_value(false)?;
        self.start += len;
        Ok(())
    }

    /// Returns the length of the value at `start`. With `keep == false` the
    /// bytes already scanned are dropped whenever the buffer is refilled, so a
    /// huge skipped value costs no memory.
    fn scan_value(&mut self, keep: bool) -> ScanResult<usize> {
        let first = match self.peek()? {
            Some(b) => b,
            None => {
                return Err(self.syntax("expected a JSON value, found the end of the file".into()))
            }
        };
        if matches!(first, b',' | b':' | b']' | b'}') {
            return Err(self.syntax(format!("expected a JSON value, found '{}'", first as char)));
        }
        let value_start = self.offset();
        // u64: a skipped value is not buffered, so its depth is unbounded.
        let mut depth = 0u64;
        let mut pos = 0usize; // relative to self.start
        let mut in_string = false;
        let mut escape = false;
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        loop {
            let bytes = &self.buf[self.start..self.end];
            while pos < bytes.len() {
                let b = bytes[pos];
                if in_string {
                    if escape {
                        escape = false;
                    } else if b == b'\\' {
                        escape = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            return Ok(pos + 1);
                        }
                    }
                } else if scalar {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                        return Ok(pos);
                    }
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            if depth == 0 {
                                return Err(ScanError::Syntax {
                                    offset: self.offset() + pos as u64,
                                    reason: format!("unbalanced '{}'", b as char),
                                });
                            }
                            depth -= 1;
                            if depth == 0 {
                                return Ok(pos + 1);
                            }
                        }
                        _ => {}
                    }
                }
                pos += 1;
            }
            if !keep && pos > 0 {
                // Drop what was scanned; only the state matters.
                self.start += pos;
                pos = 0;
            }
            if !self.fill()? {
                if scalar && pos > 0 {
                    return Ok(pos);
                }
                return Err(ScanError::Syntax {
                    offset: value_start,
                    reason: "the file ends inside this value (truncated?)".into(),
                });
            }
        }
    }
}

impl<R: Read + Seek> Scanner<R> {
    /// Continues reading at file offset `offset` (drops the buffer).
    pub fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        self.src.seek(SeekFrom::Start(offset))?;
        self.start = 0;
        self.end = 0;
        self.base = offset;
        self.eof = false;
        Ok(())
    }
}

fn printable(b: u8) -> String {
    if b.is_ascii_graphic() {
        (b as char).to_string()
    } else {
        format!("\\x{b:02x}")
    }
}

/// Converts a serde_json error inside `slice` (which starts at file offset
/// `base`) into a file offset.
pub fn json_error_offset(base: u64, slice: &[u8], err: &serde_json::Error) -> u64 {
    let (line, column) = (err.line(), err.column());
    if line == 0 {
        return base;
    }
    let mut line_start = 0usize;
    let mut current = 1usize;
    if line > 1 {
        for (i, &b) in slice.iter().enumerate() {
            if b == b'\n' {
                current += 1;
                if current == line {
                    line_start = i + 1;
                    break;
                }
            }
        }
    }
    base + (line_start + column.saturating_sub(1)).min(slice.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `chunk` bytes per read, to exercise refills mid-value.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn values(text: &str, chunk: usize) -> Vec<(u64, String)> {
        let mut s = Scanner::new(Trickle {
            data: text.as_bytes(),
            chunk,
        });
        s.buf = vec![0; 4]; // force growth too
        s.expect(b'[', "'['").unwrap();
        let mut out = Vec::new();
        loop {
            if s.peek().unwrap() == Some(b']') {
                break;
            }
            let (off, v) = s.value().unwrap();
            let (off, v) = (off, String::from_utf8(v.to_vec()).unwrap());
            s.consume(v.len());
            out.push((off, v));
            if s.peek().unwrap() == Some(b',') {
                s.bump();
            }
        }
        out
    }

    #[test]
    fn splits_values_with_strings_escapes_and_nesting_across_refills() {
        let text = r#"[ {"a":"x]}\"y","b":[1,{"c":2}]} , 42,"s\\" , true,[ ]]"#;
        for chunk in [1, 2, 3, 7, 1000] {
            let v = values(text, chunk);
            let got: Vec<&str> = v.iter().map(|(_, s)| s.as_str()).collect();
            assert_eq!(
                got,
                [
                    r#"{"a":"x]}\"y","b":[1,{"c":2}]}"#,
                    "42",
                    r#""s\\""#,
                    "true",
                    "[ ]"
                ],
                "chunk {chunk}"
            );
            assert_eq!(v[0].0, 2);
            assert_eq!(&text[v[1].0 as usize..v[1].0 as usize + 2], "42");
        }
    }

    #[test]
    fn skipping_does_not_keep_the_value() {
        let big = format!("[\"{}\", 7]", "z".repeat(10_000));
        let mut s = Scanner::new(Trickle {
            data: big.as_bytes(),
            chunk: 64,
        });
        s.buf = vec![0; 128];
        s.expect(b'[', "'['").unwrap();
        s.skip_value().unwrap();
        assert!(s.buf.len() <= 256, "buffer grew to {}", s.buf.len());
        s.expect(b',', "','").unwrap();
        let (off, v) = s.value().unwrap();
        assert_eq!(v, b"7");
        assert_eq!(off as usize, big.len() - 2);
    }

    #[test]
    fn truncated_value_reports_where_it_started() {
        let mut s = Scanner::new(&b"[ {\"a\": [1, 2"[..]);
        s.expect(b'[', "'['").unwrap();
        match s.value() {
            Err(ScanError::Syntax { offset, reason }) => {
                assert_eq!(offset, 2);
                assert!(reason.contains("ends inside"), "{reason}");
            }
            other => panic!("unexpected {:?}", other.map(|(o, v)| (o, v.to_vec()))),
        }
    }

    #[test]
    fn error_offsets_map_lines_and_columns() {
        let slice = b"{\n  \"a\": tru }";
        let err = serde_json::from_slice::<serde_json::Value>(slice).unwrap_err();
        let off = json_error_offset(100, slice, &err);
        // the error is reported on line 2, within "tru }"
        assert!((109..=114).contains(&off), "{off}");
    }
}
