//! Payload conditions with Suricata's semantics.
//!
//! A rule's ops run in order over one buffer. A positive `content` match moves
//! the cursor to the end of the match; a relative content (`distance` /
//! `within`) is searched from that cursor. When a relative content fails,
//! the previous content is retried at its next occurrence, as Suricata's
//! content inspection does, bounded by [`MAX_STEPS`] per rule evaluation
//! (Suricata's `inspection-recursion-limit` plays the same role).

use crate::bytes::{self, value, Vars};
use crate::ir::{Content, Op, MAX_VARS};

/// Upper bound on match attempts per rule per buffer, so a hostile rule with
/// many relative contents cannot make evaluation exponential.
pub const MAX_STEPS: u32 = 3000;

/// Whether `ops` all hold on `buf`.
pub fn eval_ops(ops: &[Op], buf: &[u8]) -> bool {
    let mut e = Eval {
        buf,
        vars: [0; MAX_VARS],
        steps: 0,
    };
    e.from(ops, 0, 0)
}

/// One rule's evaluation over one buffer: the `byte_extract` variables live
/// here, on the stack. Backtracking re-runs every op after the retried one,
/// so a variable is always the one extracted on the current path.
struct Eval<'a> {
    buf: &'a [u8],
    vars: Vars,
    steps: u32,
}

impl Eval<'_> {
    fn from(&mut self, ops: &[Op], i: usize, cursor: usize) -> bool {
        let Some(op) = ops.get(i) else {
            return true;
        };
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return false;
        }
        let buf = self.buf;
        let retry = ops.get(i + 1).is_some_and(Op::is_relative);
        match op {
            Op::Content(c) => {
                let Some((start, end)) = window(c, buf.len(), cursor, &self.vars) else {
                    // The window is empty: a negated content holds trivially.
                    return c.negated && self.from(ops, i + 1, cursor);
                };
                if c.negated {
                    return find(c, buf, start, end).is_none() && self.from(ops, i + 1, cursor);
                }
                let mut from = start;
                while let Some(pos) = find(c, buf, from, end) {
                    if self.from(ops, i + 1, pos + c.pattern.len()) {
                        return true;
                    }
                    if !retry || self.steps > MAX_STEPS {
                        return false;
                    }
                    from = pos + 1;
                }
                false
            }
            Op::Pcre(p) => {
                let base = if p.relative { cursor } else { 0 };
                let Some(hay) = buf.get(base..) else {
                    return false;
                };
                if p.negated {
                    return p.regex.find_at(hay, 0).is_none() && self.from(ops, i + 1, cursor);
                }
                let mut start = 0;
                while let Some((s, e)) = p.regex.find_at(hay, start) {
                    if self.from(ops, i + 1, base + e) {
                        return true;
                    }
                    self.steps += 1;
                    if !retry || self.steps > MAX_STEPS {
                        return false;
                    }
                    start = s + 1;
                }
                false
            }
            Op::Bsize(b) => {
                let len = buf.len() as u64;
                b.min <= len && len <= b.max && self.from(ops, i + 1, cursor)
            }
            Op::IsDataAt(d) => {
                let n = value(d.at, &self.vars);
                let len = buf.len() as i64;
                // Suricata: relative checks `cursor + n <= len`, absolute `n < len`.
                let has = if d.relative {
                    (cursor as i64).saturating_add(n) <= len
                } else {
                    n < len
                };
                has != d.negated && self.from(ops, i + 1, cursor)
            }
            Op::ByteTest(t) => {
                bytes::test(t, buf, cursor, &self.vars) && self.from(ops, i + 1, cursor)
            }
            Op::ByteJump(j) => match bytes::jump(j, buf, cursor, &self.vars) {
                Some(to) => self.from(ops, i + 1, to),
                None => false,
            },
            Op::ByteExtract(x) => match bytes::extract(x, buf, cursor, &self.vars) {
                Some((v, to)) => {
                    if let Some(slot) = self.vars.get_mut(usize::from(x.var)) {
                        *slot = v;
                    }
                    self.from(ops, i + 1, to)
                }
                None => false,
            },
        }
    }
}

/// The byte range `[start, end)` a content's match must lie in, or `None`
/// when no match can fit.
pub fn window(c: &Content, len: usize, cursor: usize, vars: &Vars) -> Option<(usize, usize)> {
    let plen = c.pattern.len();
    let len_i = len as i64;
    let get = |v: Option<crate::ir::Value>| v.map(|v| value(v, vars));
    let (start, end) = if c.is_relative() {
        let base = (cursor as i64).saturating_add(get(c.distance).unwrap_or(0));
        let end = match get(c.within) {
            Some(w) => base.saturating_add(w),
            None => len_i,
        };
        (base.max(0), end)
    } else {
        let offset = get(c.offset).unwrap_or(0).max(0);
        let end = match get(c.depth) {
            Some(d) => offset.saturating_add(d),
            None => len_i,
        };
        (offset, end)
    };
    let end = usize::try_from(end.clamp(0, len_i)).ok()?;
    let start = usize::try_from(start).ok()?;
    if start > end || end - start < plen {
        return None;
    }
    if c.endswith {
        // Only a match ending exactly at the buffer end counts.
        if end != len {
            return None;
        }
        return Some((len - plen, len));
    }
    Some((start, end))
}

/// First match position of `c` in `buf[from..end]`.
pub fn find(c: &Content, buf: &[u8], from: usize, end: usize) -> Option<usize> {
    let hay = buf.get(from..end)?;
    let pat = c.pattern.as_slice();
    if pat.is_empty() {
        return Some(from);
    }
    let pos = if c.nocase {
        find_nocase(hay, pat)
    } else {
        memchr::memmem::find(hay, pat)
    };
    pos.map(|p| p + from)
}

/// ASCII case-insensitive search; `pat` is already lower-case.
fn find_nocase(hay: &[u8], pat: &[u8]) -> Option<usize> {
    let first = pat[0];
    let upper = first.to_ascii_uppercase();
    let last_start = hay.len().checked_sub(pat.len())?;
    let mut i = 0;
    while i <= last_start {
        let rest = &hay[i..=last_start];
        let off = if first == upper {
            memchr::memchr(first, rest)
        } else {
            memchr::memchr2(first, upper, rest)
        }?;
        let at = i + off;
        if hay[at..at + pat.len()]
            .iter()
            .zip(pat)
            .all(|(h, p)| h.to_ascii_lowercase() == *p)
        {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Value;

    fn content(p: &[u8]) -> Content {
        Content {
            pattern: p.to_vec(),
            nocase: false,
            negated: false,
            offset: None,
            depth: None,
            distance: None,
            within: None,
            endswith: false,
        }
    }

    fn ops(cs: Vec<Content>) -> Vec<Op> {
        cs.into_iter().map(Op::Content).collect()
    }

    #[test]
    fn absolute_offset_and_depth_bound_the_match() {
        let buf = b"xxabcxx";
        let mut c = content(b"abc");
        c.offset = Some(Value::Const(2));
        c.depth = Some(Value::Const(3));
        assert!(eval_ops(&ops(vec![c.clone()]), buf));
        c.offset = Some(Value::Const(3));
        assert!(!eval_ops(&ops(vec![c.clone()]), buf));
        c.offset = None;
        c.depth = Some(Value::Const(4));
        assert!(!eval_ops(&ops(vec![c]), buf), "match must end within depth");
    }

    #[test]
    fn offset_at_payload_end_never_matches() {
        let mut c = content(b"a");
        c.offset = Some(Value::Const(3));
        assert!(!eval_ops(&ops(vec![c]), b"aaa"));
    }

    #[test]
    fn relative_match_backtracks_to_later_occurrence() {
        // First "ab" is followed by "zz"; only the second "ab" has "cd" right after.
        let buf = b"abzzabcd";
        let a = content(b"ab");
        let mut b = content(b"cd");
        b.distance = Some(Value::Const(0));
        b.within = Some(Value::Const(2));
        assert!(eval_ops(&ops(vec![a, b]), buf));
    }

    #[test]
    fn within_counts_from_distance() {
        let buf = b"ab--cd";
        let a = content(b"ab");
        let mut b = content(b"cd");
        b.distance = Some(Value::Const(2));
        b.within = Some(Value::Const(2));
        assert!(eval_ops(&ops(vec![a.clone(), b.clone()]), buf));
        b.within = Some(Value::Const(1));
        assert!(!eval_ops(&ops(vec![a, b]), buf));
    }

    #[test]
    fn negative_distance_looks_back() {
        let buf = b"abcdef";
        let a = content(b"def");
        let mut b = content(b"cd");
        b.distance = Some(Value::Const(-4));
        b.within = Some(Value::Const(4));
        assert!(eval_ops(&ops(vec![a, b]), buf));
    }

    #[test]
    fn negated_content_fails_when_present() {
        let a = content(b"GET");
        let mut b = content(b"admin");
        b.negated = true;
        assert!(eval_ops(&ops(vec![a.clone(), b.clone()]), b"GET /index"));
        assert!(!eval_ops(&ops(vec![a, b]), b"GET /admin"));
    }

    #[test]
    fn nocase_folds_ascii_only() {
        let mut c = content(b"select");
        c.nocase = true;
        assert!(eval_ops(&ops(vec![c.clone()]), b"xx SeLeCt yy"));
        let mut u = content("é".as_bytes());
        u.nocase = true;
        assert!(!eval_ops(&ops(vec![u]), "É".as_bytes()));
    }

    #[test]
    fn endswith_requires_buffer_end() {
        let mut c = content(b"end");
        c.endswith = true;
        assert!(eval_ops(&ops(vec![c.clone()]), b"the end"));
        assert!(!eval_ops(&ops(vec![c]), b"the end."));
    }

    #[test]
    fn pathological_backtracking_is_bounded() {
        let buf = vec![b'a'; 4096];
        let mut cs = vec![content(b"a")];
        for _ in 0..8 {
            let mut c = content(b"a");
            c.distance = Some(Value::Const(0));
            cs.push(c);
        }
        let mut last = content(b"b");
        last.distance = Some(Value::Const(0));
        cs.push(last);
        assert!(!eval_ops(&ops(cs), &buf));
    }
}
