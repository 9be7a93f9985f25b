//! How every command writes counts and sizes, so that `record`, `serve`,
//! `import`, `info` and `replay` say the same thing the same way: bytes as an
//! exact count with thousands separators (`110,592 B`), plus a binary unit
//! from 1 MiB up (`104,857,600 B (100.0 MiB)`); counts with the right plural
//! (`1 buffer`, `2 processes`).

/// `1234567` -> `1,234,567`.
pub fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in bytes: exact, and from 1 MiB on also in a binary unit.
pub fn bytes(v: u64) -> String {
    const UNITS: [&str; 4] = ["MiB", "GiB", "TiB", "PiB"];
    if v < 1 << 20 {
        return format!("{} B", thousands(v));
    }
    let mut scaled = v as f64 / (1u64 << 20) as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{} B ({scaled:.1} {})", thousands(v), UNITS[unit])
}

/// `n` and the noun, in the plural unless `n` is 1: `1 buffer`,
/// `3 buffers`, `2 processes`, `1,024 blocks`.
pub fn plural(n: u64, noun: &str) -> String {
    let count = thousands(n);
    if n == 1 {
        format!("{count} {noun}")
    } else if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") {
        format!("{count} {noun}es")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(110_592), "110,592");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn bytes_are_exact_and_large_ones_also_scaled() {
        assert_eq!(bytes(64), "64 B");
        // 108 KiB: below 1 MiB the exact count says it all.
        assert_eq!(bytes(110_592), "110,592 B");
        assert_eq!(bytes(100 << 20), "104,857,600 B (100.0 MiB)");
        // 12 banks x 1073741792 B = 11.99999964 GiB.
        assert_eq!(bytes(12 * 1_073_741_792), "12,884,901,504 B (12.0 GiB)");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "buffer"), "1 buffer");
        assert_eq!(plural(0, "buffer"), "0 buffers");
        assert_eq!(plural(1, "process"), "1 process");
        assert_eq!(plural(2, "process"), "2 processes");
        assert_eq!(plural(1500, "block"), "1,500 blocks");
    }
}
