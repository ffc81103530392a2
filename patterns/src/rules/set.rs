//! Sorted sets of disjoint inclusive `u128` intervals.
//!
//! Address and port lists are evaluated with this set algebra (union,
//! difference, intersection) so that negation and nesting are exact, and the
//! result can be searched with a binary search on the hot path.

use serde::{Deserialize, Serialize};

/// A set of `u128` values stored as sorted, disjoint, non-adjacent inclusive
/// ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<(u128, u128)>", into = "Vec<(u128, u128)>")]
pub(crate) struct RangeSet {
    ranges: Vec<(u128, u128)>,
}

impl From<Vec<(u128, u128)>> for RangeSet {
    fn from(ranges: Vec<(u128, u128)>) -> Self {
        Self::from_ranges(ranges)
    }
}

impl From<RangeSet> for Vec<(u128, u128)> {
    fn from(set: RangeSet) -> Self {
        set.ranges
    }
}

impl RangeSet {
    /// The empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The set holding exactly `start..=end`.
    pub(crate) fn range(start: u128, end: u128) -> Self {
        Self::from_ranges(vec![(start, end)])
    }

    /// Builds a normalised set from arbitrary ranges; reversed ranges are
    /// swapped rather than dropped so that no input is silently lost.
    pub(crate) fn from_ranges(mut ranges: Vec<(u128, u128)>) -> Self {
        for r in &mut ranges {
            if r.0 > r.1 {
                *r = (r.1, r.0);
            }
        }
        ranges.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match out.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => out.push((start, end)),
            }
        }
        Self { ranges: out }
    }

    /// The ranges, sorted and disjoint.
    pub(crate) fn ranges(&self) -> &[(u128, u128)] {
        &self.ranges
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Binary search for `value`.
    pub(crate) fn contains(&self, value: u128) -> bool {
        let idx = self.ranges.partition_point(|&(_, end)| end < value);
        self.ranges
            .get(idx)
            .is_some_and(|&(start, _)| start <= value)
    }

    /// True when every value of `start..=end` is in the set.
    pub(crate) fn covers(&self, start: u128, end: u128) -> bool {
        let idx = self.ranges.partition_point(|&(_, e)| e < start);
        self.ranges
            .get(idx)
            .is_some_and(|&(s, e)| s <= start && e >= end)
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        let mut all = self.ranges.clone();
        all.extend_from_slice(&other.ranges);
        Self::from_ranges(all)
    }

    pub(crate) fn intersect(&self, other: &Self) -> Self {
        let (a, b) = (&self.ranges, &other.ranges);
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            let start = a[i].0.max(b[j].0);
            let end = a[i].1.min(b[j].1);
            if start <= end {
                out.push((start, end));
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self { ranges: out }
    }

    /// `self \ other`.
    pub(crate) fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let b = &other.ranges;
        let mut j = 0;
        for &(start, end) in &self.ranges {
            let mut cur = start;
            let mut open = true;
            while j < b.len() && b[j].1 < cur {
                j += 1;
            }
            let mut k = j;
            while open && k < b.len() && b[k].0 <= end {
                if b[k].0 > cur {
                    out.push((cur, b[k].0 - 1));
                }
                if b[k].1 >= end {
                    open = false;
                } else {
                    cur = b[k].1 + 1;
                }
                k += 1;
            }
            if open {
                out.push((cur, end));
            }
        }
        Self { ranges: out }
    }
}
