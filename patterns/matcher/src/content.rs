//! Payload conditions with Suricata's semantics.
//!
//! A rule's ops run in order over one buffer. A positive `content` match moves
//! the cursor to the end of the match; a relative content (`distance` /
//! `within`) is searched from that cursor. When a relative content fails,
//! the previous content is retried at its next occurrence, as Suricata's
//! content inspection does, bounded by [`MAX_STEPS`] per rule evaluation
//! (Suricata's `inspection-recursion-limit` plays the same role).

use crate::ir::{Content, Op};

/// Upper bound on match attempts per rule per buffer, so a hostile rule with
/// many relative contents cannot make evaluation exponential.
pub const MAX_STEPS: u32 = 3000;

/// Whether `ops` all hold on `buf`.
pub fn eval_ops(ops: &[Op], buf: &[u8]) -> bool {
    let mut steps = 0;
    eval_from(ops, 0, buf, 0, &mut steps)
}

fn eval_from(ops: &[Op], i: usize, buf: &[u8], cursor: usize, steps: &mut u32) -> bool {
    let Some(op) = ops.get(i) else {
        return true;
    };
    *steps += 1;
    if *steps > MAX_STEPS {
        return false;
    }
    match op {
        Op::Content(c) => {
            let Some((start, end)) = window(c, buf.len(), cursor) else {
                // The window is empty: a negated content holds trivially.
                return c.negated && eval_from(ops, i + 1, buf, cursor, steps);
            };
            if c.negated {
                return find(c, buf, start, end).is_none()
                    && eval_from(ops, i + 1, buf, cursor, steps);
            }
            let retry = next_is_relative(ops, i);
            let mut from = start;
            while let Some(pos) = find(c, buf, from, end) {
                if eval_from(ops, i + 1, buf, pos + c.pattern.len(), steps) {
                    return true;
                }
                if !retry || *steps > MAX_STEPS {
                    return false;
                }
                from = pos + 1;
            }
            false
        }
    }
}

fn next_is_relative(ops: &[Op], i: usize) -> bool {
    match ops.get(i + 1) {
        Some(Op::Content(c)) => c.is_relative(),
        None => false,
    }
}

/// The byte range `[start, end)` a content's match must lie in, or `None`
/// when no match can fit.
pub fn window(c: &Content, len: usize, cursor: usize) -> Option<(usize, usize)> {
    let plen = c.pattern.len();
    let (start, mut end) = if c.is_relative() {
        let distance = i64::from(c.distance.unwrap_or(0));
        let base = cursor as i64 + distance;
        let start = base.max(0) as usize;
        let end = match c.within {
            Some(w) => (base + i64::from(w)).clamp(0, len as i64) as usize,
            None => len,
        };
        (start, end)
    } else {
        let end = c.depth_end.map_or(len, |d| (d as usize).min(len));
        (c.offset as usize, end)
    };
    end = end.min(len);
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

    fn content(p: &[u8]) -> Content {
        Content {
            pattern: p.to_vec(),
            nocase: false,
            negated: false,
            offset: 0,
            depth_end: None,
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
        c.offset = 2;
        c.depth_end = Some(5);
        assert!(eval_ops(&ops(vec![c.clone()]), buf));
        c.offset = 3;
        assert!(!eval_ops(&ops(vec![c.clone()]), buf));
        c.offset = 0;
        c.depth_end = Some(4);
        assert!(!eval_ops(&ops(vec![c]), buf), "match must end within depth");
    }

    #[test]
    fn offset_at_payload_end_never_matches() {
        let mut c = content(b"a");
        c.offset = 3;
        assert!(!eval_ops(&ops(vec![c]), b"aaa"));
    }

    #[test]
    fn relative_match_backtracks_to_later_occurrence() {
        // First "ab" is followed by "zz"; only the second "ab" has "cd" right after.
        let buf = b"abzzabcd";
        let a = content(b"ab");
        let mut b = content(b"cd");
        b.distance = Some(0);
        b.within = Some(2);
        assert!(eval_ops(&ops(vec![a, b]), buf));
    }

    #[test]
    fn within_counts_from_distance() {
        let buf = b"ab--cd";
        let a = content(b"ab");
        let mut b = content(b"cd");
        b.distance = Some(2);
        b.within = Some(2);
        assert!(eval_ops(&ops(vec![a.clone(), b.clone()]), buf));
        b.within = Some(1);
        assert!(!eval_ops(&ops(vec![a, b]), buf));
    }

    #[test]
    fn negative_distance_looks_back() {
        let buf = b"abcdef";
        let a = content(b"def");
        let mut b = content(b"cd");
        b.distance = Some(-4);
        b.within = Some(4);
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
            c.distance = Some(0);
            cs.push(c);
        }
        let mut last = content(b"b");
        last.distance = Some(0);
        cs.push(last);
        assert!(!eval_ops(&ops(cs), &buf));
    }
}
