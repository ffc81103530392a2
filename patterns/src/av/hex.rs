//! ClamAV hex body signatures (the content of `.ndb` lines and `.ldb`
//! subsignatures) parsed into the matcher's parts and gaps.
//!
//! Supported: hex bytes, `??`, `a?`, `?a`, `*`, `{n}`, `{n-}`, `{-n}`,
//! `{n-m}`, `[n-m]`, fixed-length alternations `(aa|bb)` / `(aabb|ccdd)`
//! and their negations `!(..)`, and variable-length alternations `(aa|bbcc)`
//! in `.ndb` (the signature is expanded into one variant per alternative).
//! The boundary classes `(B)`, `(L)`, `(W)` are reported as unsupported.
//! [`widen`] gives the `::w` (UTF-16LE) form of a logical subsignature.

use sandgate_matcher::av::{ByteSet, Gap, Part, Seg};

/// Why a hex signature was not lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// Valid ClamAV syntax Sandgate does not implement (skip the signature).
    Unsupported(String),
    /// Not a valid hex signature (an error in the database).
    Malformed(String),
}

/// `{n}` up to this many bytes is folded into the part as `??` bytes.
const FOLD_FIXED_GAP: u64 = 64;
/// Largest alternation accepted (options × length).
const MAX_ALT: usize = 4096;

/// A parsed body: parts joined by gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub parts: Vec<Part>,
    pub gaps: Vec<Gap>,
}

enum Item {
    Seg(Seg),
    Gap(Gap),
    /// An alternation whose alternatives differ in length: the signature is
    /// expanded into one variant per alternative.
    Var(Vec<Vec<ByteSet>>),
}

/// Most variants a signature with variable-length alternations expands to.
const MAX_VARIANTS: usize = 64;

/// Parse `text` into one body; a variable-length alternation (which needs
/// several) is reported as unsupported here.
pub fn parse(text: &str, nocase: bool) -> Result<Body, HexError> {
    let mut v = parse_variants(text, nocase)?;
    if v.len() != 1 {
        return Err(HexError::Unsupported(
            "variable-length alternation in a logical subsignature".into(),
        ));
    }
    v.pop()
        .ok_or_else(|| HexError::Malformed("empty hex signature".into()))
}

/// Parse `text` into its variants (one unless it has variable-length
/// alternations); `nocase` applies the `::i` modifier (ASCII letters match
/// either case).
pub fn parse_variants(text: &str, nocase: bool) -> Result<Vec<Body>, HexError> {
    let s = text.as_bytes();
    if s.is_empty() {
        return Err(HexError::Malformed("empty hex signature".into()));
    }
    let mut items: Vec<Item> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'*' => {
                items.push(Item::Gap(Gap { min: 0, max: None }));
                i += 1;
            }
            b'{' => {
                let close = find(s, i, b'}')?;
                let gap = parse_range(&text[i + 1..close], "{")?;
                match gap.max {
                    Some(m) if m == gap.min && m <= FOLD_FIXED_GAP => {
                        for _ in 0..m {
                            items.push(Item::Seg(Seg::Class(ByteSet::any())));
                        }
                    }
                    _ => items.push(Item::Gap(gap)),
                }
                i = close + 1;
            }
            b'[' => {
                let close = find(s, i, b']')?;
                let gap = parse_range(&text[i + 1..close], "[")?;
                if gap.max.is_none() || text[i + 1..close].starts_with('-') {
                    return Err(HexError::Malformed(format!(
                        "anchor `{}` needs the form [n-m]",
                        &text[i..=close]
                    )));
                }
                items.push(Item::Gap(gap));
                i = close + 1;
            }
            b'!' => {
                if s.get(i + 1) != Some(&b'(') {
                    return Err(HexError::Malformed(format!(
                        "`!` at character {} must start a negated alternation `!(..)`",
                        i + 1
                    )));
                }
                let close = find(s, i + 1, b')')?;
                items.push(alternation(&text[i + 2..close], true, nocase)?);
                i = close + 1;
            }
            b'(' => {
                let close = find(s, i, b')')?;
                let inner = &text[i + 1..close];
                if matches!(inner, "B" | "L" | "W") {
                    return Err(HexError::Unsupported(format!("character class ({inner})")));
                }
                items.push(alternation(inner, false, nocase)?);
                i = close + 1;
            }
            _ => {
                let Some(pair) = s.get(i..i + 2) else {
                    return Err(HexError::Malformed(format!(
                        "odd number of hex digits at character {}",
                        i + 1
                    )));
                };
                items.push(Item::Seg(Seg::Class(nocase_class(
                    byte_class(pair, i)?,
                    nocase,
                ))));
                i += 2;
            }
        }
    }
    let mut variants: Vec<Vec<Item>> = vec![Vec::new()];
    for item in items {
        match item {
            Item::Var(options) => {
                if variants.len() * options.len() > MAX_VARIANTS {
                    return Err(HexError::Unsupported(format!(
                        "variable-length alternations expanding to more than {MAX_VARIANTS} variants"
                    )));
                }
                let mut next = Vec::new();
                for v in &variants {
                    for o in &options {
                        let mut nv: Vec<Item> = v.iter().map(Item::duplicate).collect();
                        nv.extend(o.iter().map(|c| Item::Seg(Seg::Class(*c))));
                        next.push(nv);
                    }
                }
                variants = next;
            }
            other => {
                for v in variants.iter_mut() {
                    v.push(other.duplicate());
                }
            }
        }
    }
    variants.into_iter().map(assemble).collect()
}

impl Item {
    fn duplicate(&self) -> Item {
        match self {
            Item::Seg(s) => Item::Seg(s.clone()),
            Item::Gap(g) => Item::Gap(*g),
            Item::Var(o) => Item::Var(o.clone()),
        }
    }
}

fn find(s: &[u8], from: usize, what: u8) -> Result<usize, HexError> {
    s[from..]
        .iter()
        .position(|c| *c == what)
        .map(|p| from + p)
        .ok_or_else(|| {
            HexError::Malformed(format!(
                "`{}` at character {} is never closed",
                s[from] as char,
                from + 1
            ))
        })
}

fn number(t: &str) -> Result<u64, HexError> {
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return Err(HexError::Malformed(format!("`{t}` is not a number")));
    }
    t.parse::<u64>()
        .map_err(|_| HexError::Malformed(format!("`{t}` is too large")))
}

/// `n`, `n-`, `-n`, `n-m`.
fn parse_range(t: &str, open: &str) -> Result<Gap, HexError> {
    let bad = || HexError::Malformed(format!("wildcard `{open}{t}` is not n, n-, -n or n-m"));
    let gap = match t.split_once('-') {
        None => {
            let n = number(t).map_err(|_| bad())?;
            Gap {
                min: n,
                max: Some(n),
            }
        }
        Some(("", m)) => Gap {
            min: 0,
            max: Some(number(m).map_err(|_| bad())?),
        },
        Some((n, "")) => Gap {
            min: number(n).map_err(|_| bad())?,
            max: None,
        },
        Some((n, m)) => {
            let (n, m) = (number(n).map_err(|_| bad())?, number(m).map_err(|_| bad())?);
            if m < n {
                return Err(bad());
            }
            Gap {
                min: n,
                max: Some(m),
            }
        }
    };
    Ok(gap)
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// One byte position: `ab`, `??`, `a?`, `?a`.
fn byte_class(pair: &[u8], at: usize) -> Result<ByteSet, HexError> {
    let bad = || {
        HexError::Malformed(format!(
            "`{}` at character {} is not a hex byte or nibble wildcard",
            String::from_utf8_lossy(pair),
            at + 1
        ))
    };
    match (pair[0], pair[1]) {
        (b'?', b'?') => Ok(ByteSet::any()),
        (b'?', lo) => Ok(ByteSet::masked(hexval(lo).ok_or_else(bad)?, 0x0f)),
        (hi, b'?') => Ok(ByteSet::masked(hexval(hi).ok_or_else(bad)? << 4, 0xf0)),
        (hi, lo) => Ok(ByteSet::byte(
            (hexval(hi).ok_or_else(bad)? << 4) | hexval(lo).ok_or_else(bad)?,
        )),
    }
}

fn nocase_class(c: ByteSet, nocase: bool) -> ByteSet {
    if !nocase {
        return c;
    }
    let mut out = c;
    for b in 0..=255u8 {
        if c.contains(b) && b.is_ascii_alphabetic() {
            out.insert(b.to_ascii_lowercase());
            out.insert(b.to_ascii_uppercase());
        }
    }
    out
}

/// `aa|bb|..` (inside the parentheses).
fn alternation(inner: &str, negated: bool, nocase: bool) -> Result<Item, HexError> {
    let mut options: Vec<Vec<ByteSet>> = Vec::new();
    for opt in inner.split('|') {
        let b = opt.as_bytes();
        if b.is_empty() || b.len() % 2 != 0 {
            return Err(HexError::Malformed(format!(
                "alternative `{opt}` in `({inner})` is not a whole number of hex bytes"
            )));
        }
        if b.iter()
            .any(|c| matches!(c, b'*' | b'{' | b'[' | b'(' | b'!'))
        {
            return Err(HexError::Unsupported(format!(
                "wildcard inside alternation `({inner})`"
            )));
        }
        let mut o = Vec::new();
        for (k, pair) in b.chunks(2).enumerate() {
            o.push(nocase_class(byte_class(pair, k * 2)?, nocase));
        }
        options.push(o);
    }
    if options.len() < 2 && !negated {
        return Err(HexError::Malformed(format!(
            "alternation `({inner})` needs at least two alternatives"
        )));
    }
    let len = options[0].len();
    if options.iter().any(|o| o.len() != len) {
        if negated {
            return Err(HexError::Malformed(format!(
                "a negated alternation needs alternatives of one length, `!({inner})` has several; ClamAV rejects this database"
            )));
        }
        return Ok(Item::Var(options));
    }
    if options.len() * len > MAX_ALT {
        return Err(HexError::Unsupported(format!(
            "alternation with {} alternatives of {len} bytes",
            options.len()
        )));
    }
    if len == 1 {
        let mut set = ByteSet::empty();
        for o in &options {
            for b in 0..=255u8 {
                if o[0].contains(b) {
                    set.insert(b);
                }
            }
        }
        return Ok(Item::Seg(Seg::Class(if negated {
            set.complement()
        } else {
            set
        })));
    }
    Ok(Item::Seg(Seg::Alt { options, negated }))
}

/// Group items into parts split at gaps; adjacent gaps add up.
fn assemble(items: Vec<Item>) -> Result<Body, HexError> {
    let mut parts = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut segs: Vec<Seg> = Vec::new();
    let mut pending: Option<Gap> = None;
    for item in items {
        match item {
            Item::Seg(s) => {
                if let Some(g) = pending.take() {
                    gaps.push(g);
                }
                segs.push(s);
            }
            Item::Var(_) => {
                return Err(HexError::Malformed(
                    "internal: unexpanded alternation".into(),
                ))
            }
            Item::Gap(g) => {
                if segs.is_empty() && parts.is_empty() {
                    return Err(HexError::Malformed(
                        "a hex signature cannot start with a wildcard gap".into(),
                    ));
                }
                if !segs.is_empty() {
                    parts.push(Part::new(std::mem::take(&mut segs)));
                }
                pending = Some(match pending {
                    None => g,
                    Some(p) => Gap {
                        min: p.min.saturating_add(g.min),
                        max: p.max.zip(g.max).map(|(a, b)| a.saturating_add(b)),
                    },
                });
            }
        }
    }
    if pending.is_some() {
        return Err(HexError::Malformed(
            "a hex signature cannot end with a wildcard gap".into(),
        ));
    }
    if !segs.is_empty() {
        parts.push(Part::new(segs));
    }
    if parts.iter().all(|p| p.anchor.is_empty()) {
        return Err(HexError::Unsupported(
            "a signature without a single fixed byte".into(),
        ));
    }
    Ok(Body { parts, gaps })
}

/// The `::w` (wide) form of a body: every byte position is followed by a
/// zero byte (UTF-16LE of ASCII), alternatives likewise; gaps keep their
/// byte counts (what clamscan 1.4.3 does).
pub fn widen(body: &Body) -> Body {
    let zero = ByteSet::byte(0);
    let wide =
        |classes: &[ByteSet]| -> Vec<ByteSet> { classes.iter().flat_map(|c| [*c, zero]).collect() };
    let parts = body
        .parts
        .iter()
        .map(|p| {
            let segs = p
                .segs
                .iter()
                .flat_map(|s| match s {
                    Seg::Class(c) => vec![Seg::Class(*c), Seg::Class(zero)],
                    Seg::Alt { options, negated } => vec![Seg::Alt {
                        options: options.iter().map(|o| wide(o)).collect(),
                        negated: *negated,
                    }],
                })
                .collect();
            Part::new(segs)
        })
        .collect();
    Body {
        parts,
        gaps: body.gaps.clone(),
    }
}
