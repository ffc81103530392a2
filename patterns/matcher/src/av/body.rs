//! Body patterns: a ClamAV hex signature is split at its variable-length
//! wildcards (`*`, `{n-m}`, `[n-m]`) into fixed-length [`Part`]s joined by
//! [`Gap`]s. Every part position matches one byte class (exact byte, nibble,
//! `??`, single-byte alternation or its negation) or a fixed-length
//! multi-byte alternation, so a part is verified in one pass over its bytes.

use serde::{Deserialize, Serialize};

/// A set of byte values (256-bit mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ByteSet(pub [u64; 4]);

impl ByteSet {
    /// The empty set.
    pub const fn empty() -> Self {
        ByteSet([0; 4])
    }

    /// Every byte (`??`).
    pub const fn any() -> Self {
        ByteSet([u64::MAX; 4])
    }

    /// Exactly byte `b`.
    pub fn byte(b: u8) -> Self {
        let mut s = Self::empty();
        s.insert(b);
        s
    }

    /// Bytes `x` with `x & mask == value & mask` (nibble wildcards).
    pub fn masked(value: u8, mask: u8) -> Self {
        let mut s = Self::empty();
        for x in 0..=255u8 {
            if x & mask == value & mask {
                s.insert(x);
            }
        }
        s
    }

    pub fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1u64 << (b & 63);
    }

    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1u64 << (b & 63)) != 0
    }

    /// The complement (negated alternation).
    pub fn complement(&self) -> Self {
        ByteSet([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }

    /// The single byte in the set, if it holds exactly one.
    pub fn single(&self) -> Option<u8> {
        let ones: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        if ones != 1 {
            return None;
        }
        (0..=255u8).find(|b| self.contains(*b))
    }
}

/// One fixed-length element of a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seg {
    /// One byte from the set.
    Class(ByteSet),
    /// A multi-byte alternation; every option has the same length.
    /// `negated`: any byte string of that length that is none of the options.
    Alt {
        options: Vec<Vec<ByteSet>>,
        negated: bool,
    },
}

impl Seg {
    /// Bytes this element consumes.
    pub fn len(&self) -> usize {
        match self {
            Seg::Class(_) => 1,
            Seg::Alt { options, .. } => options.first().map_or(0, Vec::len),
        }
    }

    /// True when the element consumes nothing (never produced by the compiler).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn matches(&self, data: &[u8]) -> bool {
        match self {
            Seg::Class(c) => data.first().is_some_and(|b| c.contains(*b)),
            Seg::Alt { options, negated } => {
                let any = options.iter().any(|o| {
                    o.len() <= data.len() && o.iter().zip(data).all(|(c, b)| c.contains(*b))
                });
                any != *negated
            }
        }
    }
}

/// A fixed-length run of elements, with the literal the prefilter searches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub segs: Vec<Seg>,
    /// Byte offset inside the part of [`Part::anchor`].
    pub anchor_at: u32,
    /// Longest run of exact bytes; empty when the part has none (verified at
    /// every position).
    pub anchor: Vec<u8>,
    len: u32,
}

impl Part {
    /// Build a part and pick its anchor (the longest run of exact bytes).
    pub fn new(segs: Vec<Seg>) -> Self {
        let mut best = (0usize, Vec::new());
        let mut cur_start = 0usize;
        let mut cur: Vec<u8> = Vec::new();
        let mut pos = 0usize;
        for s in &segs {
            match s {
                Seg::Class(c) if c.single().is_some() => {
                    if cur.is_empty() {
                        cur_start = pos;
                    }
                    cur.extend(c.single());
                }
                _ => {
                    if cur.len() > best.1.len() {
                        best = (cur_start, std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
            }
            pos += s.len();
        }
        if cur.len() > best.1.len() {
            best = (cur_start, cur);
        }
        Part {
            anchor_at: best.0 as u32,
            anchor: best.1,
            len: pos as u32,
            segs,
        }
    }

    /// Bytes the part spans.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for a part spanning nothing (rejected by [`super::AvDb::validate`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length, elements and anchor agree (checked on decoded databases).
    pub fn is_consistent(&self) -> bool {
        let segs_ok = self.segs.iter().all(|s| match s {
            Seg::Class(_) => true,
            Seg::Alt { options, .. } => {
                let n = options.first().map_or(0, Vec::len);
                n > 0 && options.iter().all(|o| o.len() == n)
            }
        });
        let sum: usize = self.segs.iter().map(Seg::len).sum();
        segs_ok && sum == self.len() && self.anchor_at as usize + self.anchor.len() <= self.len()
    }

    /// Does the part match `data` starting at its first byte?
    #[inline]
    pub fn matches_at(&self, data: &[u8]) -> bool {
        if data.len() < self.len() {
            return false;
        }
        let mut at = 0usize;
        for s in &self.segs {
            match data.get(at..) {
                Some(rest) if s.matches(rest) => at += s.len(),
                _ => return false,
            }
        }
        true
    }
}

/// Bytes allowed between two parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub min: u64,
    /// `None`: unbounded (`*`, `{n-}`).
    pub max: Option<u64>,
}

impl Gap {
    #[inline]
    pub fn allows(&self, distance: u64) -> bool {
        distance >= self.min && self.max.is_none_or(|m| distance <= m)
    }
}
