//! The AV scan engine: ClamAV-style signatures matched over a file or stream
//! fed chunk by chunk.
//!
//! `sandgate-patterns` parses ClamAV databases (`.hdb/.hsb/.ndb/.ldb`) and
//! lowers them into an [`AvDb`]; this module only matches. It builds for
//! wasm32-unknown-unknown (no files, no threads) and runs natively for tests
//! and benchmarks.
//!
//! - [`AvDb`]: the compiled database (serialised into the AV guest).
//! - [`body`]: body patterns — fixed-length parts joined by gaps, and how one
//!   part is verified at a position.
//! - [`scan`]: the streaming [`Scanner`] (prefilter, part verification across
//!   chunk boundaries, chain and offset checks, hashes, logical signatures).

pub mod body;
pub mod scan;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use body::{ByteSet, Gap, Part, Seg};
pub use scan::{Detection, LimitKind, ScanLimits, ScanOutcome, Scanner, MIN_SCAN_SIZE};

/// Largest `EOF-n` distance a database may use: the scanner keeps that
/// much file tail, so it bounds a scan's memory.
pub const MAX_EOF_BACK: u64 = 16 << 20;

/// A compiled signature database.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AvDb {
    /// Signature names, indexed by signature id (what [`Detection`] reports).
    pub names: Vec<String>,
    /// Body patterns: `.ndb` signatures and `.ldb` subsignatures.
    pub bodies: Vec<BodySig>,
    /// Hash signatures (`.hdb`, `.hsb`).
    pub hashes: Vec<HashSig>,
    /// Logical signatures (`.ldb`).
    pub logical: Vec<LogicalSig>,
    /// Prefilter built on first use (not serialised: rebuilt per instance).
    #[serde(skip)]
    prefilter: OnceLock<scan::Prefilter>,
}

/// Error decoding a serialised [`AvDb`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "decoding the AV database failed: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl AvDb {
    /// Number of signatures (detection names).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the database holds no signature.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Name of signature `sig`; empty for an unknown id.
    pub fn name(&self, sig: u32) -> &str {
        self.names
            .get(sig as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Serialise (postcard) for embedding into a module.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decode bytes written by [`AvDb::to_bytes`], checking every index.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let db: AvDb = postcard::from_bytes(bytes).map_err(|e| DecodeError(e.to_string()))?;
        db.validate()?;
        Ok(db)
    }

    /// Check internal references so scanning never indexes out of bounds.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let n = self.names.len();
        for (i, b) in self.bodies.iter().enumerate() {
            let ok = match b.owner {
                Owner::Sig(s) => (s as usize) < n,
                Owner::Sub { logical, index } => self
                    .logical
                    .get(logical as usize)
                    .is_some_and(|l| index < l.subsigs),
            };
            if !ok || b.parts.is_empty() || b.gaps.len() + 1 != b.parts.len() {
                return Err(DecodeError(format!("body pattern {i} is malformed")));
            }
            if matches!(b.offset, Offset::Eof { back, .. } if back > MAX_EOF_BACK) {
                return Err(DecodeError(format!("body pattern {i} keeps too much tail")));
            }
            if b.parts.iter().any(|p| p.is_empty() || !p.is_consistent()) {
                return Err(DecodeError(format!("body pattern {i} has an empty part")));
            }
        }
        for h in &self.hashes {
            if h.sig as usize >= n {
                return Err(DecodeError("hash signature names an unknown id".into()));
            }
        }
        for (i, l) in self.logical.iter().enumerate() {
            if l.sig as usize >= n || !l.expr.valid(l.subsigs) || l.subsigs > 64 {
                return Err(DecodeError(format!("logical signature {i} is malformed")));
            }
        }
        Ok(())
    }

    pub(crate) fn prefilter(&self) -> &scan::Prefilter {
        self.prefilter.get_or_init(|| scan::Prefilter::build(self))
    }
}

/// Who a body pattern reports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    /// A standalone (`.ndb`) signature: a match is a detection.
    Sig(u32),
    /// Subsignature `index` of logical signature `logical` (index into
    /// [`AvDb::logical`]): a match increments its count.
    Sub { logical: u32, index: u8 },
}

/// Where a body pattern's first byte may lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Offset {
    /// `*`: anywhere.
    Any,
    /// `n` or `n,maxshift`: start in `start..=start+shift`.
    Abs { start: u64, shift: u64 },
    /// `EOF-n` or `EOF-n,maxshift`: start in `size-back..=size-back+shift`.
    Eof { back: u64, shift: u64 },
}

/// One body pattern: `parts[0] gaps[0] parts[1] …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodySig {
    pub owner: Owner,
    pub offset: Offset,
    pub parts: Vec<Part>,
    /// `gaps[i]` lies between `parts[i]` and `parts[i+1]`.
    pub gaps: Vec<Gap>,
}

impl BodySig {
    /// Longest possible match length, `None` if unbounded.
    pub fn max_len(&self) -> Option<u64> {
        let mut total: u64 = self.parts.iter().map(|p| p.len() as u64).sum();
        for g in &self.gaps {
            total = total.checked_add(g.max?)?;
        }
        Some(total)
    }
}

/// Hash algorithm of a hash signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HashKind {
    Md5,
    Sha1,
    Sha256,
}

/// A whole-file hash signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashSig {
    pub sig: u32,
    pub kind: HashKind,
    pub digest: Vec<u8>,
    /// File size that must match; `None` for ClamAV's `*` (any size).
    pub size: Option<u64>,
}

/// A logical (`.ldb`) signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalSig {
    pub sig: u32,
    /// Number of subsignatures (at most 64).
    pub subsigs: u8,
    pub expr: Expr,
    /// `FileSize:min-max`.
    pub file_size: Option<(u64, u64)>,
}

/// Comparison in a counted sub-expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Gt,
    Lt,
}

/// A logical expression over subsignature match counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expr {
    Sub(u8),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `E=X`, `E>X`, `E<X`, optionally `,Y`: at least Y distinct
    /// subsignatures matched (what clamscan 1.4.3 does for all three).
    Count {
        expr: Box<Expr>,
        op: CmpOp,
        count: u64,
        distinct: Option<u64>,
    },
}

impl Expr {
    fn valid(&self, subsigs: u8) -> bool {
        match self {
            Expr::Sub(i) => *i < subsigs,
            Expr::And(a, b) | Expr::Or(a, b) => a.valid(subsigs) && b.valid(subsigs),
            Expr::Count { expr, .. } => expr.valid(subsigs),
        }
    }

    /// Evaluate against per-subsignature counts: (match count, set of
    /// matched subsignatures as a bit mask); a count of 0 means "false".
    pub fn eval(&self, counts: &[u64]) -> (u64, u64) {
        match self {
            Expr::Sub(i) => {
                let c = counts.get(*i as usize).copied().unwrap_or(0);
                (c, if c > 0 { 1u64 << (*i as u32 % 64) } else { 0 })
            }
            Expr::And(a, b) => {
                let (ca, ma) = a.eval(counts);
                let (cb, mb) = b.eval(counts);
                if ca > 0 && cb > 0 {
                    (ca.saturating_add(cb), ma | mb)
                } else {
                    (0, 0)
                }
            }
            Expr::Or(a, b) => {
                let (ca, ma) = a.eval(counts);
                let (cb, mb) = b.eval(counts);
                (ca.saturating_add(cb), ma | mb)
            }
            Expr::Count {
                expr,
                op,
                count,
                distinct,
            } => {
                let (c, m) = expr.eval(counts);
                let d = m.count_ones() as u64;
                let ok = match op {
                    CmpOp::Eq => c == *count,
                    CmpOp::Gt => c > *count,
                    CmpOp::Lt => c < *count,
                } && distinct.is_none_or(|y| d >= y);
                if ok {
                    (c.max(1), m)
                } else {
                    (0, 0)
                }
            }
        }
    }
}
