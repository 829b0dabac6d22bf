//! Hashing a token by its last bytes only, which are its signature: hashing
//! all of a token (several hundred bytes) cost more than the rest of a
//! cache hit. Lookups still compare the whole string, so two tokens sharing
//! a signature's tail merely share a bucket; and since the caches of
//! keyward and keyward-verify store only tokens that verified, nobody can
//! choose tails to flood one.

use std::hash::{BuildHasher, Hasher, RandomState};

/// Bytes of a token's end that are hashed.
const HASHED_TAIL: usize = 24;

/// The `BuildHasher` of a map keyed by token strings.
#[derive(Debug, Default, Clone)]
pub struct SignatureHash(RandomState);

impl BuildHasher for SignatureHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

/// Hashes the last `HASHED_TAIL` bytes of what it is given.
pub struct TailHasher(std::hash::DefaultHasher);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}
