//! Hashing a token by its last bytes only, which are its signature: hashing
//! all of a token (several hundred bytes) cost more than the rest of a
//! cache hit. Lookups still compare the whole string, so two tokens sharing
//! a signature's tail merely share a bucket; and since the caches of
//! keyward and keyward-verify store only tokens that verified, nobody can
//! choose tails to flood one. That is also why the tail needs no keyed
//! hash: one multiplication folds it (SipHash cost a cache hit about 250
//! instructions, counted with callgrind; this about 20).

use std::hash::{BuildHasher, Hasher, RandomState};

/// Bytes of a token's end that are hashed: eight base64url characters of
/// its signature, 48 bits that nobody chooses.
const HASHED_TAIL: usize = 8;

/// An odd constant (2^64 divided by the golden ratio) whose product mixes
/// every input bit into the high and the low half alike.
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// The `BuildHasher` of a map keyed by token strings (or their bytes).
#[derive(Debug, Clone)]
pub struct SignatureHash {
    seed: u64,
}

impl Default for SignatureHash {
    /// A seed of its own per map, from the standard library's random keys.
    fn default() -> Self {
        Self {
            seed: RandomState::new().build_hasher().finish(),
        }
    }
}

impl BuildHasher for SignatureHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.seed)
    }
}

/// Folds the last `HASHED_TAIL` bytes of each thing it is given (a string's
/// bytes and its terminator, or a slice's length and its bytes).
pub struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(HASHED_TAIL)..];
        let mut word = [0u8; HASHED_TAIL];
        word[..tail.len()].copy_from_slice(tail);
        self.0 = fold(self.0 ^ u64::from_le_bytes(word));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The 128-bit product's halves, exclusive-ored (as foldhash and ahash do).
fn fold(x: u64) -> u64 {
    let product = u128::from(x) * u128::from(MULTIPLIER);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn only_the_tail_counts_and_every_tail_bit_does() {
        let hash = SignatureHash::default();
        assert_eq!(
            hash.hash_one("header.claims.signature-tail"),
            hash.hash_one("other.claims.signature-tail")
        );
        let base = "h.c.ABCDEFGHabcdefgh";
        let mut seen = HashSet::new();
        for position in base.len() - HASHED_TAIL..base.len() {
            for bit in 0..6 {
                let mut bytes = base.as_bytes().to_vec();
                bytes[position] ^= 1 << bit;
                assert!(seen.insert(hash.hash_one(&bytes[..])));
            }
        }
        assert!(!seen.contains(&hash.hash_one(base.as_bytes())));
    }

    #[test]
    fn maps_are_seeded_apart() {
        let (a, b) = (SignatureHash::default(), SignatureHash::default());
        assert_ne!(a.hash_one("h.c.signature"), b.hash_one("h.c.signature"));
    }

    #[test]
    fn random_tails_spread_over_the_buckets_and_the_tag_bits() {
        let hash = SignatureHash::default();
        let (mut low, mut high) = ([0u32; 64], [0u32; 128]);
        for i in 0u64..64_000 {
            let tail = fold(i.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let token = format!("h.c.{tail:016x}");
            let h = hash.hash_one(&token);
            low[(h & 63) as usize] += 1;
            high[(h >> 57) as usize] += 1;
        }
        // 1,000 and 500 expected in each: none far off.
        assert!(low.iter().all(|&n| (800..1200).contains(&n)), "{low:?}");
        assert!(high.iter().all(|&n| (350..650).contains(&n)), "{high:?}");
    }
}
