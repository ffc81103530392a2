//! The streaming scanner.
//!
//! Per chunk: an Aho-Corasick prefilter finds the anchor literal of every
//! part (over the chunk plus the few history bytes an anchor can straddle);
//! each hit is verified against the part's byte classes, waiting for the next
//! chunk when the part ends beyond the data seen so far. Verified part
//! occurrences are processed in order of their end offset: a first part
//! checks the pattern's start offset, a later part must follow a recorded
//! end of the previous part at a distance its gap allows, and a final part
//! completes the pattern. `EOF-n` patterns are matched at [`Scanner::finish`]
//! over the kept tail of the file (never more than the largest `n`), with
//! the same part verification and chaining; hashes
//! are updated incrementally. Memory stays bounded by the longest part, the
//! largest `EOF-n` and the recorded ends of bounded gaps.

use std::collections::{HashMap, VecDeque};

use aho_corasick::{AhoCorasick, MatchKind};
use md5::Digest;

use super::{body, AvDb, HashKind, Offset, Owner};

/// Files shorter than this are never scanned: clamscan ignores them
/// ("File too small") and reports them clean, whatever the signatures.
pub const MIN_SCAN_SIZE: u64 = 6;

/// Limits applied to one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Bytes accepted before the scan stops with [`LimitKind::MaxFileSize`].
    pub max_file_size: u64,
    /// Report every matching signature (clamscan `--allmatch`) instead of
    /// stopping at the first.
    pub all_match: bool,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_file_size: u64::MAX,
            all_match: false,
        }
    }
}

/// One signature that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// Signature id ([`AvDb::name`]).
    pub signature: u32,
    /// Stream offset where the match starts (0 for hash and logical signatures).
    pub offset: u64,
}

/// Which limit stopped a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    MaxFileSize,
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Detections in the order found (at most one per signature; only the
    /// first when `all_match` is off).
    pub detections: Vec<Detection>,
    /// Set when a limit stopped the scan before the end of the data; hash,
    /// `EOF-n` and logical signatures were then not evaluated.
    pub limit_exceeded: Option<LimitKind>,
}

/// (body, part) reference.
type PartRef = (u32, u16);

/// Search structures derived from an [`AvDb`] (built once per database).
#[derive(Debug)]
pub(crate) struct Prefilter {
    ac: Option<AhoCorasick>,
    /// AC pattern id → parts anchored on it.
    by_pattern: Vec<Vec<PartRef>>,
    /// Parts without an exact byte, verified at every position.
    always: Vec<PartRef>,
    /// Longest anchor literal.
    max_anchor: usize,
    /// Longest streamed part: history kept between chunks.
    max_part: usize,
    /// Bodies with an `EOF-n` offset, matched at finish.
    eof_bodies: Vec<u32>,
    /// Largest `EOF-n` back distance (bytes of tail kept).
    eof_keep: usize,
    /// (kind, digest) → hash signature indexes.
    hashes: HashMap<(HashKind, Vec<u8>), Vec<u32>>,
    need: [bool; 3],
    /// Per hash kind: the largest file size a signature accepts (`u64::MAX`
    /// when one accepts any size); past it the hash is not computed.
    max_size: [u64; 3],
}

impl Prefilter {
    pub(crate) fn build(db: &AvDb) -> Self {
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut by_pattern: Vec<Vec<PartRef>> = Vec::new();
        let mut always = Vec::new();
        let mut max_anchor = 0;
        let mut max_part = 0;
        let mut eof_bodies = Vec::new();
        let mut eof_keep: usize = 0;
        for (b, body) in db.bodies.iter().enumerate() {
            if let Offset::Eof { back, .. } = body.offset {
                eof_bodies.push(b as u32);
                eof_keep = eof_keep.max(usize::try_from(back).unwrap_or(usize::MAX));
                continue;
            }
            for (p, part) in body.parts.iter().enumerate() {
                let r = (b as u32, p as u16);
                max_part = max_part.max(part.len());
                if part.anchor.is_empty() {
                    always.push(r);
                    continue;
                }
                max_anchor = max_anchor.max(part.anchor.len());
                let id = *index.entry(part.anchor.clone()).or_insert_with(|| {
                    literals.push(part.anchor.clone());
                    by_pattern.push(Vec::new());
                    literals.len() - 1
                });
                by_pattern[id].push(r);
            }
        }
        let ac = if literals.is_empty() {
            None
        } else {
            match AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&literals)
            {
                Ok(ac) => Some(ac),
                Err(_) => {
                    // Too large for the automaton: verify those parts everywhere.
                    for refs in by_pattern.drain(..) {
                        always.extend(refs);
                    }
                    None
                }
            }
        };
        let mut hashes: HashMap<(HashKind, Vec<u8>), Vec<u32>> = HashMap::new();
        let mut need = [false; 3];
        let mut max_size = [0u64; 3];
        for (i, h) in db.hashes.iter().enumerate() {
            need[h.kind as usize] = true;
            let k = h.kind as usize;
            max_size[k] = max_size[k].max(h.size.unwrap_or(u64::MAX));
            hashes
                .entry((h.kind, h.digest.clone()))
                .or_default()
                .push(i as u32);
        }
        Prefilter {
            ac,
            by_pattern,
            always,
            max_anchor,
            max_part,
            eof_bodies,
            eof_keep,
            hashes,
            need,
            max_size,
        }
    }
}

/// Incremental hash state for the algorithms the database uses.
struct Hashers {
    md5: Option<md5::Md5>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
}

impl Hashers {
    /// Stop computing hashes no signature can match once the data is
    /// longer than every size their signatures name.
    fn prune(&mut self, total: u64, max_size: &[u64; 3]) {
        if total > max_size[HashKind::Md5 as usize] {
            self.md5 = None;
        }
        if total > max_size[HashKind::Sha1 as usize] {
            self.sha1 = None;
        }
        if total > max_size[HashKind::Sha256 as usize] {
            self.sha256 = None;
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }
}

/// A scan of one file or stream over an [`AvDb`].
pub struct Scanner<'db> {
    db: &'db AvDb,
    pf: &'db Prefilter,
    limits: ScanLimits,
    /// Bytes fed (and accepted) so far.
    pos: u64,
    /// The last bytes before the next chunk (`hist_base` is the stream
    /// offset of `hist[0]`).
    hist: Vec<u8>,
    hist_base: u64,
    /// File tail kept for `EOF-n` patterns.
    tail: Vec<u8>,
    /// Parts whose anchor was seen but whose end lies in a later chunk:
    /// (start offset, part).
    pending: Vec<(u64, PartRef)>,
    /// Per always-verified part: next start offset to try.
    always_next: Vec<u64>,
    /// Multi-part bodies: per part (but the last) the recorded chain ends
    /// as (end offset, chain start).
    chains: HashMap<u32, Vec<VecDeque<(u64, u64)>>>,
    /// Bodies that reported already (standalone signatures stop).
    finished: Vec<u64>,
    /// Logical signature → per-subsignature match counts.
    counts: HashMap<u32, Vec<u64>>,
    detections: Vec<Detection>,
    detected: Vec<u64>,
    hashers: Hashers,
    exceeded: Option<LimitKind>,
    occ: Vec<(u64, u64, PartRef)>,
    /// While `finish` chains an `EOF-n` body: its resolved start range.
    eof_range: Option<(u64, u64)>,
}

fn bit_set(bits: &mut [u64], i: usize) -> bool {
    let (w, b) = (i / 64, i % 64);
    match bits.get_mut(w) {
        Some(word) => {
            let was = *word & (1 << b) != 0;
            *word |= 1 << b;
            was
        }
        None => true,
    }
}

fn bit_get(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

impl<'db> Scanner<'db> {
    /// Start a scan (builds the database's prefilter on first use).
    pub fn new(db: &'db AvDb, limits: ScanLimits) -> Self {
        let pf = db.prefilter();
        Scanner {
            db,
            pf,
            limits,
            pos: 0,
            hist: Vec::new(),
            hist_base: 0,
            tail: Vec::new(),
            pending: Vec::new(),
            always_next: vec![0; pf.always.len()],
            chains: HashMap::new(),
            finished: vec![0; db.bodies.len().div_ceil(64)],
            counts: HashMap::new(),
            detections: Vec::new(),
            detected: vec![0; db.names.len().div_ceil(64)],
            hashers: Hashers {
                md5: pf.need[HashKind::Md5 as usize].then(md5::Md5::new),
                sha1: pf.need[HashKind::Sha1 as usize].then(sha1::Sha1::new),
                sha256: pf.need[HashKind::Sha256 as usize].then(sha2::Sha256::new),
            },
            exceeded: None,
            occ: Vec::new(),
            eof_range: None,
        }
    }

    /// True once a detection is certain and `all_match` is off (callers may
    /// stop feeding).
    pub fn done(&self) -> bool {
        !self.limits.all_match && !self.detections.is_empty() && self.pos >= MIN_SCAN_SIZE
    }

    /// Feed the next chunk; a match spanning chunk boundaries is found.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.exceeded.is_some() || chunk.is_empty() {
            return;
        }
        let room = self.limits.max_file_size.saturating_sub(self.pos);
        let chunk = if (chunk.len() as u64) > room {
            self.exceeded = Some(LimitKind::MaxFileSize);
            return;
        } else {
            chunk
        };
        self.hashers
            .prune(self.pos + chunk.len() as u64, &self.pf.max_size);
        self.hashers.update(chunk);
        if self.pf.eof_keep > 0 {
            keep_tail(&mut self.tail, chunk, self.pf.eof_keep);
        }
        if !self.done() {
            self.scan_chunk(chunk);
        }
        self.pos += chunk.len() as u64;
    }

    fn scan_chunk(&mut self, chunk: &[u8]) {
        let old_len = self.hist.len();
        let mut buf = std::mem::take(&mut self.hist);
        buf.extend_from_slice(chunk);
        let base = self.hist_base;
        let end = base + buf.len() as u64;
        let mut occ = std::mem::take(&mut self.occ);
        occ.clear();

        let pending = std::mem::take(&mut self.pending);
        for (start, r) in pending {
            self.verify(&buf, base, end, start, r, &mut occ);
        }
        if let Some(ac) = &self.pf.ac {
            let from = old_len.saturating_sub(self.pf.max_anchor.saturating_sub(1));
            for m in ac.find_overlapping_iter(&buf[from..]) {
                let m_end = from + m.end();
                if m_end <= old_len {
                    continue;
                }
                let anchor_abs = base + (from + m.start()) as u64;
                if let Some(refs) = self.pf.by_pattern.get(m.pattern().as_usize()) {
                    for &r in refs {
                        let Some(part) = self.part(r) else { continue };
                        let Some(start) = anchor_abs.checked_sub(part.anchor_at as u64) else {
                            continue;
                        };
                        if start < base {
                            continue;
                        }
                        self.verify(&buf, base, end, start, r, &mut occ);
                    }
                }
            }
        }
        for i in 0..self.pf.always.len() {
            let r = self.pf.always[i];
            let Some(len) = self.part(r).map(|p| p.len() as u64) else {
                continue;
            };
            let mut s = self.always_next[i].max(base);
            while s + len <= end {
                self.verify(&buf, base, end, s, r, &mut occ);
                s += 1;
            }
            self.always_next[i] = s;
        }

        occ.sort_unstable_by_key(|o| (o.0, o.1));
        for &(e, s, r) in &occ {
            self.occurrence(s, e, r);
        }
        self.occ = occ;

        let keep = self.pf.max_part.max(self.pf.max_anchor);
        let cut = buf.len().saturating_sub(keep);
        buf.drain(..cut);
        self.hist_base = base + cut as u64;
        self.hist = buf;
    }

    fn part(&self, r: PartRef) -> Option<&'db body::Part> {
        self.db.bodies.get(r.0 as usize)?.parts.get(r.1 as usize)
    }

    /// Verify part `r` starting at stream offset `start` against `buf`
    /// (stream offsets `base..end`), or defer it when it ends beyond `end`.
    fn verify(
        &mut self,
        buf: &[u8],
        base: u64,
        end: u64,
        start: u64,
        r: PartRef,
        occ: &mut Vec<(u64, u64, PartRef)>,
    ) {
        if bit_get(&self.finished, r.0 as usize) {
            return;
        }
        let Some(part) = self.part(r) else { return };
        let part_end = start + part.len() as u64;
        if part_end > end {
            self.pending.push((start, r));
            return;
        }
        let Some(rel) = start.checked_sub(base) else {
            return;
        };
        let rel = rel as usize;
        if part.matches_at(&buf[rel..]) {
            occ.push((part_end, start, r));
        }
    }

    /// Process one verified part occurrence (in end order).
    fn occurrence(&mut self, start: u64, end: u64, (b, p): PartRef) {
        let db = self.db;
        let Some(body) = db.bodies.get(b as usize) else {
            return;
        };
        if bit_get(&self.finished, b as usize) {
            return;
        }
        let last = p as usize + 1 == body.parts.len();
        let chain_start = if p == 0 {
            let ok = match body.offset {
                Offset::Any => true,
                Offset::Abs { start: n, shift } => start >= n && start - n <= shift,
                Offset::Eof { .. } => self
                    .eof_range
                    .is_some_and(|(lo, hi)| start >= lo && start <= hi),
            };
            if !ok {
                return;
            }
            start
        } else {
            let Some(chains) = self.chains.get_mut(&b) else {
                return;
            };
            let Some(gap) = body.gaps.get(p as usize - 1) else {
                return;
            };
            // Ends are recorded in increasing order and this part's starts
            // only grow: drop ends now too far back; the oldest remaining
            // end is then the farthest, so it alone decides.
            let prev = &mut chains[p as usize - 1];
            if let Some(max) = gap.max {
                while prev
                    .front()
                    .is_some_and(|(e, _)| e.saturating_add(max) < start)
                {
                    prev.pop_front();
                }
            }
            match prev.front() {
                Some(&(e, cs)) if e <= start && gap.allows(start - e) => cs,
                _ => return,
            }
        };
        if last {
            self.complete(b, chain_start, body.owner);
            return;
        }
        let nparts = body.parts.len();
        let gap = body.gaps[p as usize];
        let next_len = body.parts[p as usize + 1].len() as u64;
        let chains = self
            .chains
            .entry(b)
            .or_insert_with(|| vec![VecDeque::new(); nparts - 1]);
        let list = &mut chains[p as usize];
        match gap.max {
            None => {
                if list.is_empty() {
                    list.push_back((end, chain_start));
                }
            }
            Some(max) => {
                while list
                    .front()
                    .is_some_and(|(e, _)| e.saturating_add(max).saturating_add(next_len) < end)
                {
                    list.pop_front();
                }
                if list.back().is_none_or(|(e, _)| *e != end) {
                    list.push_back((end, chain_start));
                }
            }
        }
    }

    fn complete(&mut self, b: u32, start: u64, owner: Owner) {
        match owner {
            Owner::Sig(s) => {
                bit_set(&mut self.finished, b as usize);
                self.detect(s, start);
            }
            Owner::Sub { logical, index } => {
                let n = self
                    .db
                    .logical
                    .get(logical as usize)
                    .map_or(0, |l| l.subsigs as usize);
                let counts = self.counts.entry(logical).or_insert_with(|| vec![0; n]);
                if let Some(c) = counts.get_mut(index as usize) {
                    *c += 1;
                }
            }
        }
    }

    fn detect(&mut self, sig: u32, offset: u64) {
        if !self.limits.all_match && !self.detections.is_empty() {
            return;
        }
        if !bit_set(&mut self.detected, sig as usize) {
            self.detections.push(Detection {
                signature: sig,
                offset,
            });
        }
    }

    /// End of data: `EOF-n` patterns, hashes and logical signatures. Data
    /// shorter than [`MIN_SCAN_SIZE`] yields no detection (like clamscan).
    pub fn finish(mut self) -> ScanOutcome {
        if self.pos < MIN_SCAN_SIZE {
            self.detections.clear();
        } else if self.exceeded.is_none() {
            self.finish_eof();
            self.finish_hashes();
            self.finish_logical();
        }
        ScanOutcome {
            detections: self.detections,
            limit_exceeded: self.exceeded,
        }
    }

    /// `EOF-n` bodies: now that the size is known, each is an absolute
    /// start range; its parts are searched in the kept tail (overlapping
    /// anchor hits, verified) and chained exactly like streamed parts.
    fn finish_eof(&mut self) {
        let db = self.db;
        let size = self.pos;
        let tail = std::mem::take(&mut self.tail);
        let tail_base = size - tail.len() as u64;
        let mut occ: Vec<(u64, u64, PartRef)> = Vec::new();
        for &b in &self.pf.eof_bodies {
            let Some(body) = db.bodies.get(b as usize) else {
                continue;
            };
            let Offset::Eof { back, shift } = body.offset else {
                continue;
            };
            let Some(lo) = size.checked_sub(back) else {
                continue;
            };
            self.eof_range = Some((lo, lo.saturating_add(shift)));
            let from = lo.max(tail_base);
            let region = tail.get((from - tail_base) as usize..).unwrap_or(&[]);
            occ.clear();
            for (p, part) in body.parts.iter().enumerate() {
                let r = (b, p as u16);
                let mut hit = |s: usize| {
                    if region.get(s..).is_some_and(|d| part.matches_at(d)) {
                        let start = from + s as u64;
                        occ.push((start + part.len() as u64, start, r));
                    }
                };
                if part.anchor.is_empty() {
                    (0..region.len()).for_each(&mut hit);
                    continue;
                }
                let finder = memchr::memmem::Finder::new(&part.anchor);
                let mut at = 0;
                while let Some(i) = region.get(at..).and_then(|d| finder.find(d)) {
                    if let Some(s) = (at + i).checked_sub(part.anchor_at as usize) {
                        hit(s);
                    }
                    at += i + 1;
                }
            }
            occ.sort_unstable_by_key(|o| (o.0, o.1));
            for &(e, s, r) in &occ {
                self.occurrence(s, e, r);
            }
        }
        self.eof_range = None;
    }

    fn finish_hashes(&mut self) {
        let size = self.pos;
        let hashers = std::mem::replace(
            &mut self.hashers,
            Hashers {
                md5: None,
                sha1: None,
                sha256: None,
            },
        );
        let digests = [
            hashers.md5.map(|h| (HashKind::Md5, h.finalize().to_vec())),
            hashers
                .sha1
                .map(|h| (HashKind::Sha1, h.finalize().to_vec())),
            hashers
                .sha256
                .map(|h| (HashKind::Sha256, h.finalize().to_vec())),
        ];
        let db = self.db;
        for key in digests.into_iter().flatten() {
            let Some(sigs) = self.pf.hashes.get(&key) else {
                continue;
            };
            for &i in sigs {
                let Some(h) = db.hashes.get(i as usize) else {
                    continue;
                };
                if h.size.is_none_or(|s| s == size) {
                    self.detect(h.sig, 0);
                }
            }
        }
    }

    fn finish_logical(&mut self) {
        let db = self.db;
        let size = self.pos;
        for (i, l) in db.logical.iter().enumerate() {
            if let Some((lo, hi)) = l.file_size {
                if size < lo || size > hi {
                    continue;
                }
            }
            let empty = vec![0; l.subsigs as usize];
            let counts = self.counts.get(&(i as u32)).unwrap_or(&empty);
            if l.expr.eval(counts).0 > 0 {
                self.detect(l.sig, 0);
            }
        }
    }
}

/// Append `chunk` to `tail`, keeping at least the last `keep` bytes
/// (amortised: trimmed only when twice as long).
fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8], keep: usize) {
    if chunk.len() >= keep {
        tail.clear();
        tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        return;
    }
    tail.extend_from_slice(chunk);
    if tail.len() >= keep.saturating_mul(2) {
        let cut = tail.len() - keep;
        tail.drain(..cut);
    }
}
