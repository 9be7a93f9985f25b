//! The one hasher for integer keys (addresses, buffer/site/program ids) used
//! on every hot path of ttalloc: the allocator model, the replay engine and
//! the recorder's live accounting each do a map lookup per event, where
//! SipHash would cost more than the work itself. Keys are ids and addresses
//! chosen by recorded programs, not by an attacker. Addresses are multiples of
//! large powers of two, so the hash must move high bits into the low bits the
//! table indexes by: a folded 128-bit multiply does that.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct FoldHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        let p = ((self.0 ^ i) as u128).wrapping_mul(K as u128);
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastBuild = BuildHasherDefault<FoldHasher>;
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;
pub type FastSet<K> = HashSet<K, FastBuild>;
