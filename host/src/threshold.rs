//! Rule thresholds (`threshold:` and `detection_filter:`), applied to a
//! rule's matches before an alert is emitted, as Suricata does.
//!
//! Each [`ThresholdSpec`](wt::ThresholdSpec) of a rule keeps a counter per
//! track key — (module, rule, spec) plus the source IP (`by_src`), the
//! destination IP (`by_dst`), the address pair (`by_both`; both directions
//! count as one pair, as in Suricata), nothing more (`by_rule`) or the flow
//! id (`by_flow`). A window opens at the first match and lasts `seconds` of
//! packet time (the capture timestamps, never wall time); the first match
//! after it opens a new window. Per match, with `n` the count in the window:
//!
//! | kind | alert | rule action (drop/reject) |
//! | --- | --- | --- |
//! | `limit` | `n <= count` | every match |
//! | `threshold` | `n == count`, then `n` restarts at 0 | only with the alert |
//! | `both` | `n == count` (once per window) | `n >= count` |
//! | `detection_filter` | `n > count` | `n > count` |
//!
//! The action column is Suricata 8's documented behaviour ("Thresholding
//! Keywords"): `limit` and `both` only rate-limit *alerts*, so an IPS still
//! drops every offending packet, while `threshold` and `detection_filter`
//! say the match does not count as a detection until the count is reached —
//! dropping earlier packets would block traffic the rule author meant to
//! tolerate. A rule with several specs alerts (or acts) only when all agree.
//!
//! Memory is bounded: at most [`ThresholdConfig::max_entries`] counters; a
//! new key beyond that evicts the least recently used counter (counted in
//! [`ThresholdStats::evicted`]; its next match starts a fresh window).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use sandgate_runtime::wit::sandgate::pattern::types as wt;

/// Threshold table settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdConfig {
    /// Most counters held at once. Default 65,536 (Suricata's
    /// `detect.thresholds.hash-size` is 16,384 buckets); at least 1.
    pub max_entries: usize,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        ThresholdConfig {
            max_entries: 65_536,
        }
    }
}

/// Counters since the table was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThresholdStats {
    /// Counters held now.
    pub entries: usize,
    /// Matches whose alert a threshold suppressed.
    pub suppressed: u64,
    /// Matches whose rule action a threshold withheld (see the module doc).
    pub actions_withheld: u64,
    /// Counters evicted because the table was full.
    pub evicted: u64,
}

/// What the thresholds of a rule decided for one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Emit the alert.
    pub alert: bool,
    /// Apply the rule's action (drop/reject) to the packet.
    pub act: bool,
}

impl Decision {
    /// A match of a rule without thresholds.
    pub const ALWAYS: Decision = Decision {
        alert: true,
        act: true,
    };
}

/// The facts of the matching packet a threshold needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// Capture time, µs since the Unix epoch.
    pub timestamp_us: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub flow_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Track {
    Src(IpAddr),
    Dst(IpAddr),
    Both(IpAddr, IpAddr),
    Rule,
    Flow(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    module: u32,
    rule: u32,
    spec: u32,
    track: Track,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    window_start_us: u64,
    count: u32,
    /// Tick of the last use, for LRU eviction.
    used: u64,
}

/// Threshold counters of every rule; see the module doc.
///
/// ```
/// use sandgate_host::threshold::{Subject, ThresholdConfig, ThresholdTable};
/// use sandgate_runtime::wit::sandgate::pattern::types::{ThresholdKind, ThresholdSpec, TrackBy};
/// let spec = [ThresholdSpec { kind: ThresholdKind::Limit, track: TrackBy::BySrc, count: 1, seconds: 60 }];
/// let mut t = ThresholdTable::new(ThresholdConfig::default());
/// let at = |s: u64| Subject { timestamp_us: s * 1_000_000, src: [10, 0, 0, 1].into(), dst: [10, 0, 0, 2].into(), flow_id: 1 };
/// assert!(t.check(0, 0, &spec, &at(0)).alert);
/// assert!(!t.check(0, 0, &spec, &at(30)).alert);
/// assert!(t.check(0, 0, &spec, &at(61)).alert); // a new window
/// ```
#[derive(Debug)]
pub struct ThresholdTable {
    max_entries: usize,
    map: HashMap<Key, Counter>,
    /// (key, tick) per use, oldest first; stale pairs are skipped lazily.
    lru: VecDeque<(Key, u64)>,
    tick: u64,
    stats: ThresholdStats,
}

impl ThresholdTable {
    pub fn new(config: ThresholdConfig) -> Self {
        ThresholdTable {
            max_entries: config.max_entries.max(1),
            map: HashMap::new(),
            lru: VecDeque::new(),
            tick: 0,
            stats: ThresholdStats::default(),
        }
    }

    /// Counters, with the current number of entries.
    pub fn stats(&self) -> ThresholdStats {
        ThresholdStats {
            entries: self.map.len(),
            ..self.stats
        }
    }

    /// Counts one match of `rule` of module `module` against its `specs`
    /// and says whether to alert and act. No specs: always, nothing counted.
    pub fn check(
        &mut self,
        module: usize,
        rule: u32,
        specs: &[wt::ThresholdSpec],
        subject: &Subject,
    ) -> Decision {
        let mut decision = Decision::ALWAYS;
        for (i, spec) in specs.iter().enumerate() {
            let key = Key {
                module: u32::try_from(module).unwrap_or(u32::MAX),
                rule,
                spec: u32::try_from(i).unwrap_or(u32::MAX),
                track: track(spec.track, subject),
            };
            let d = self.count(key, spec, subject.timestamp_us);
            decision.alert &= d.alert;
            decision.act &= d.act;
        }
        if !decision.alert {
            self.stats.suppressed += 1;
        }
        if !decision.act {
            self.stats.actions_withheld += 1;
        }
        decision
    }

    fn count(&mut self, key: Key, spec: &wt::ThresholdSpec, now_us: u64) -> Decision {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        if !self.map.contains_key(&key) && self.map.len() >= self.max_entries {
            self.evict_one();
        }
        let window_us = u64::from(spec.seconds).saturating_mul(1_000_000);
        let c = self.map.entry(key).or_insert(Counter {
            window_start_us: now_us,
            count: 0,
            used: tick,
        });
        c.used = tick;
        // Time going backwards (an unordered capture) stays in the window.
        if now_us.saturating_sub(c.window_start_us) > window_us {
            c.window_start_us = now_us;
            c.count = 0;
        }
        c.count = c.count.saturating_add(1);
        let n = c.count;
        let limit = spec.count;
        let decision = match spec.kind {
            wt::ThresholdKind::Limit => Decision {
                alert: n <= limit,
                act: true,
            },
            wt::ThresholdKind::Threshold => {
                let hit = n >= limit;
                if hit {
                    c.count = 0;
                }
                Decision {
                    alert: hit,
                    act: hit,
                }
            }
            wt::ThresholdKind::Both => Decision {
                alert: n == limit.max(1),
                act: n >= limit,
            },
            wt::ThresholdKind::DetectionFilter => Decision {
                alert: n > limit,
                act: n > limit,
            },
        };
        self.lru.push_back((key, tick));
        if self.lru.len() > self.max_entries.saturating_mul(2).saturating_add(16) {
            let map = &self.map;
            self.lru
                .retain(|(k, t)| map.get(k).is_some_and(|c| c.used == *t));
        }
        decision
    }

    /// Removes the least recently used counter.
    fn evict_one(&mut self) {
        while let Some((key, tick)) = self.lru.pop_front() {
            if self.map.get(&key).is_some_and(|c| c.used == tick) {
                self.map.remove(&key);
                self.stats.evicted += 1;
                return;
            }
        }
    }
}

fn track(by: wt::TrackBy, s: &Subject) -> Track {
    match by {
        wt::TrackBy::BySrc => Track::Src(s.src),
        wt::TrackBy::ByDst => Track::Dst(s.dst),
        wt::TrackBy::ByBoth => Track::Both(s.src.min(s.dst), s.src.max(s.dst)),
        wt::TrackBy::ByRule => Track::Rule,
        wt::TrackBy::ByFlow => Track::Flow(s.flow_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wt::ThresholdKind as K;
    use wt::TrackBy as T;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];
    const C: [u8; 4] = [10, 0, 0, 3];

    fn spec(kind: K, track: T, count: u32, seconds: u32) -> wt::ThresholdSpec {
        wt::ThresholdSpec {
            kind,
            track,
            count,
            seconds,
        }
    }

    /// A match at `ms` milliseconds from `src` to `dst` on `flow`.
    fn at(ms: u64, src: [u8; 4], dst: [u8; 4], flow: u64) -> Subject {
        Subject {
            timestamp_us: 1_700_000_000_000_000 + ms * 1000,
            src: src.into(),
            dst: dst.into(),
            flow_id: flow,
        }
    }

    /// Runs matches of one rule through one spec; returns (alert, act) each.
    fn run(s: wt::ThresholdSpec, matches: &[Subject]) -> Vec<(bool, bool)> {
        let mut t = ThresholdTable::new(ThresholdConfig::default());
        matches
            .iter()
            .map(|m| {
                let d = t.check(0, 7, &[s], m);
                (d.alert, d.act)
            })
            .collect()
    }

    fn same_src(times_ms: &[u64]) -> Vec<Subject> {
        times_ms.iter().map(|&t| at(t, A, B, 1)).collect()
    }

    const Y: (bool, bool) = (true, true);
    const N: (bool, bool) = (false, false);
    /// Alert suppressed, action still applied.
    const QUIET_ACT: (bool, bool) = (false, true);

    /// (spec, match times in ms, expected (alert, act) per match)
    type Row = (wt::ThresholdSpec, Vec<u64>, Vec<(bool, bool)>);

    #[test]
    fn each_kind_counts_matches_per_window_of_packet_time() {
        let table: Vec<Row> = vec![
            (
                spec(K::Limit, T::BySrc, 2, 10),
                vec![0, 1000, 2000, 3000, 10_001, 10_500, 11_000],
                vec![Y, Y, QUIET_ACT, QUIET_ACT, Y, Y, QUIET_ACT],
            ),
            (
                spec(K::Threshold, T::BySrc, 3, 10),
                vec![0, 1, 2, 3, 4, 5, 6, 20_000, 20_001],
                vec![N, N, Y, N, N, Y, N, N, N],
            ),
            (
                // The window restarts at the first match after it ends.
                spec(K::Threshold, T::BySrc, 2, 1),
                vec![0, 1500, 1600],
                vec![N, N, Y],
            ),
            (
                spec(K::Both, T::BySrc, 3, 60),
                vec![0, 10, 20, 30, 40, 60_021, 60_022, 60_023],
                vec![N, N, Y, QUIET_ACT, QUIET_ACT, N, N, Y],
            ),
            (
                spec(K::DetectionFilter, T::BySrc, 2, 5),
                vec![0, 100, 200, 300, 5_201, 5_300, 5_400],
                vec![N, N, Y, Y, N, N, Y],
            ),
            (
                // The window edge is inclusive: exactly `seconds` later is in.
                spec(K::Limit, T::BySrc, 1, 1),
                vec![0, 1000, 1001],
                vec![Y, QUIET_ACT, Y],
            ),
        ];
        for (i, (s, times, want)) in table.into_iter().enumerate() {
            assert_eq!(run(s, &same_src(&times)), want, "row {i}: {s:?}");
        }
    }

    #[test]
    fn track_keys_separate_counters() {
        // limit 1 per 60 s: one alert per distinct key.
        let matches = [
            at(0, A, B, 1),
            at(1, A, C, 2),
            at(2, C, B, 3),
            at(3, B, A, 1),
            at(4, A, B, 4),
        ];
        let alerts = |track| -> Vec<bool> {
            run(spec(K::Limit, track, 1, 60), &matches)
                .into_iter()
                .map(|(a, _)| a)
                .collect()
        };
        assert_eq!(alerts(T::BySrc), [true, false, true, true, false]);
        assert_eq!(alerts(T::ByDst), [true, true, false, true, false]);
        // A→B and B→A are one pair.
        assert_eq!(alerts(T::ByBoth), [true, true, true, false, false]);
        assert_eq!(alerts(T::ByRule), [true, false, false, false, false]);
        assert_eq!(alerts(T::ByFlow), [true, true, true, false, true]);
    }

    #[test]
    fn rules_and_modules_have_their_own_counters() {
        let s = [spec(K::Limit, T::ByRule, 1, 60)];
        let mut t = ThresholdTable::new(ThresholdConfig::default());
        let m = at(0, A, B, 1);
        assert!(t.check(0, 1, &s, &m).alert);
        assert!(t.check(0, 2, &s, &m).alert);
        assert!(t.check(1, 1, &s, &m).alert);
        assert!(!t.check(0, 1, &s, &m).alert);
        assert_eq!(t.stats().entries, 3);
        assert_eq!(t.stats().suppressed, 1);
    }

    #[test]
    fn rule_without_thresholds_always_alerts_and_keeps_no_state() {
        let mut t = ThresholdTable::new(ThresholdConfig::default());
        for ms in 0..10 {
            assert_eq!(t.check(0, 0, &[], &at(ms, A, B, 1)), Decision::ALWAYS);
        }
        assert_eq!(t.stats(), ThresholdStats::default());
    }

    #[test]
    fn full_table_evicts_least_recently_used_counter() {
        let s = [spec(K::Limit, T::BySrc, 1, 600)];
        let mut t = ThresholdTable::new(ThresholdConfig { max_entries: 2 });
        assert!(t.check(0, 0, &s, &at(0, A, B, 1)).alert);
        assert!(t.check(0, 0, &s, &at(1, B, A, 1)).alert);
        assert!(!t.check(0, 0, &s, &at(2, A, B, 1)).alert); // A is recent now
        assert!(t.check(0, 0, &s, &at(3, C, A, 1)).alert); // evicts B
        assert_eq!(t.stats().evicted, 1);
        assert!(!t.check(0, 0, &s, &at(4, A, B, 1)).alert, "A survived");
        assert!(t.check(0, 0, &s, &at(5, B, A, 1)).alert, "B starts afresh");
        assert_eq!(t.stats().entries, 2);
        for ms in 0..1000 {
            t.check(0, 0, &s, &at(ms, A, B, 1));
        }
        assert!(t.lru.len() <= 2 * 2 + 16, "the LRU queue stays bounded");
    }

    #[test]
    fn several_specs_must_all_agree() {
        let s = [
            spec(K::DetectionFilter, T::BySrc, 1, 60),
            spec(K::Limit, T::BySrc, 2, 60),
        ];
        let mut t = ThresholdTable::new(ThresholdConfig::default());
        let got: Vec<bool> = (0..4)
            .map(|ms| t.check(0, 0, &s, &at(ms, A, B, 1)).alert)
            .collect();
        assert_eq!(got, [false, true, false, false]);
    }
}
