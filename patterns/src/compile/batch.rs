//! Lowering a whole rule set on every core.
//!
//! Most of a build's time goes into determinising `pcre` DFAs, and rules are
//! independent of each other until their flowbits are numbered. So rules are
//! lowered in parallel ([`map_in_order`]), each distinct `pcre` value is
//! compiled once however many rules use it ([`PcreCache`]), and the steps
//! that depend on rule order (duplicate sids, flowbit numbering) run after,
//! in rule order. The result does not depend on scheduling: same rules in,
//! same bytes out.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};

use sandgate_matcher::pcre::{compile_pcre, PcreError, PcreSpec};

/// One compilation result per distinct `pcre` value, shared by all threads.
/// A value being compiled by one thread makes others that need it wait for
/// that result instead of compiling it again.
#[derive(Default)]
pub(super) struct PcreCache {
    map: Mutex<HashMap<String, Arc<PcreCell>>>,
}

/// The result of one `pcre` value, filled by the first thread to need it.
type PcreCell = OnceLock<Result<PcreSpec, PcreError>>;

impl PcreCache {
    /// [`compile_pcre`] of `value`, compiled at most once per cache.
    pub(super) fn compile(&self, value: &str) -> Result<PcreSpec, PcreError> {
        let cell = {
            // A panic elsewhere cannot leave the map half-updated: entries
            // are inserted whole, so a poisoned lock is still usable.
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(value) {
                Some(cell) => Arc::clone(cell),
                None => Arc::clone(map.entry(value.to_string()).or_default()),
            }
        };
        cell.get_or_init(|| compile_pcre(value)).clone()
    }
}

/// The number of threads to lower rules on: one per core.
pub(super) fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Fewer items than this are mapped on the calling thread: starting threads
/// would cost more than it saves (single rules, fuzz inputs).
const MIN_PARALLEL: usize = 32;

/// `f` applied to every item on up to `threads` threads, results in item
/// order. `done` runs on the calling thread once per finished item (for
/// progress). Items are handed out one at a time, so one slow item (a
/// large DFA) does not hold up a whole chunk.
pub(super) fn map_in_order<T, R, F>(
    items: &[T],
    threads: NonZeroUsize,
    f: F,
    done: &mut dyn FnMut(),
) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let workers = threads.get().min(items.len());
    if workers <= 1 || items.len() < MIN_PARALLEL {
        return items
            .iter()
            .map(|item| {
                let r = f(item);
                done();
                r
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..workers {
            let (tx, next, f) = (tx.clone(), &next, &f);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if tx.send((i, f(item))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Ends when every worker has finished (a panicking worker drops its
        // sender too; the scope then re-raises its panic).
        for (i, r) in rx {
            slots[i] = Some(r);
            done();
        }
    });
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile_rules_on, SkipReason};
    use crate::rules::{RuleSource, Vars};

    fn threads(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
    }

    /// ET Open files with many flowbits and repeated `pcre` values, as
    /// `(file, text)`; empty when the shared data is absent.
    fn et_subset() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/rules/et-open-2020");
        [
            "emerging-netbios.rules",
            "emerging-exploit_kit.rules",
            "emerging-scan.rules",
        ]
        .iter()
        .filter_map(|f| Some((f.to_string(), std::fs::read_to_string(dir.join(f)).ok()?)))
        .collect()
    }

    #[test]
    fn results_keep_item_order_whatever_the_thread_count() {
        let items: Vec<u64> = (0..500).collect();
        // Uneven work so threads finish out of order.
        let work = |n: &u64| (0..(n % 7) * 1000).fold(*n, |a, b| a.wrapping_mul(31) ^ b);
        let one = map_in_order(&items, NonZeroUsize::MIN, work, &mut || {});
        let mut count = 0;
        let four = map_in_order(
            &items,
            NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            work,
            &mut || count += 1,
        );
        assert_eq!(one, four);
        assert_eq!(one.len(), 500);
        assert_eq!(count, 500);
    }

    #[test]
    fn a_pcre_value_is_compiled_once_and_errors_are_kept() {
        let cache = PcreCache::default();
        let a = cache.compile("/ab+c/i");
        let b = cache.compile("/ab+c/i");
        assert!(a.is_ok());
        assert_eq!(a, b);
        assert_eq!(cache.map.lock().map(|m| m.len()).unwrap_or(0), 1);
        assert!(matches!(
            cache.compile("/(a)\\1/"),
            Err(PcreError::Unsupported(_))
        ));
    }

    #[test]
    fn real_rules_compile_to_the_same_bytes_on_one_thread_and_on_four() {
        let texts = et_subset();
        if texts.is_empty() {
            println!("skip: ET Open 2020 rules not found");
            return;
        }
        let sources: Vec<RuleSource<'_>> = texts
            .iter()
            .map(|(file, text)| RuleSource { file, text })
            .collect();
        let vars = Vars::suricata_defaults();
        let one = compile_rules_on(&sources, &vars, "et", "1", threads(1), &mut |_| {});
        let four = compile_rules_on(&sources, &vars, "et", "1", threads(4), &mut |_| {});
        assert!(one.set.rules.len() > 500, "{} rules", one.set.rules.len());
        assert!(!one.set.flowbits.is_empty());
        assert_eq!(one.set.flowbits, four.set.flowbits);
        assert_eq!(one.skipped, four.skipped);
        let sids = |c: &crate::compile::Compiled| -> Vec<u32> {
            c.set.rules.iter().map(|r| r.meta.sid).collect()
        };
        assert_eq!(sids(&one), sids(&four));
        assert_eq!(one.set.to_bytes().ok(), four.set.to_bytes().ok());
    }

    #[test]
    fn duplicate_sids_and_flowbits_are_settled_in_rule_order() {
        let text = "\
alert tcp any any -> any any (msg:\"first copy, fails\"; pcre:\"/(a)\\1/\"; sid:7;)
alert tcp any any -> any any (msg:\"sets b\"; flowbits:set,b; content:\"x\"; sid:1;)
alert tcp any any -> any any (msg:\"second copy, kept\"; flowbits:isset,a; content:\"y\"; sid:7;)
alert tcp any any -> any any (msg:\"third copy, duplicate\"; content:\"z\"; sid:7;)
alert tcp any any -> any any (msg:\"sets a\"; flowbits:set,a; pcre:\"/(a)\\1/\"; sid:2;)
alert tcp any any -> any any (msg:\"sets c\"; flowbits:set,c; content:\"w\"; sid:3;)
";
        // Enough plain rules after them that the set is lowered in parallel.
        let filler: String = (100..100 + MIN_PARALLEL)
            .map(|sid| format!("alert tcp any any -> any any (msg:\"f\"; sid:{sid};)\n"))
            .collect();
        let text = format!("{text}{filler}");
        let sources = [RuleSource {
            file: "dups.rules",
            text: &text,
        }];
        let vars = Vars::suricata_defaults();
        for n in [1, 2, 4] {
            let c = compile_rules_on(&sources, &vars, "t", "1", threads(n), &mut |_| {});
            let kept: Vec<(u32, &str)> = c
                .set
                .rules
                .iter()
                .take(3)
                .map(|r| (r.meta.sid, r.meta.msg.as_str()))
                .collect();
            assert_eq!(c.set.rules.len(), 3 + MIN_PARALLEL, "{n} threads");
            assert_eq!(
                kept,
                [(1, "sets b"), (7, "second copy, kept"), (3, "sets c")],
                "{n} threads"
            );
            // `a` is numbered by the kept rule 7 before `c`; rule 2 (which
            // failed) left no name behind.
            assert_eq!(c.set.flowbits, ["b", "a", "c"], "{n} threads");
            let reasons: Vec<(usize, bool)> = c
                .skipped
                .iter()
                .map(|s| (s.line, s.reason == SkipReason::DuplicateSid))
                .collect();
            assert_eq!(reasons, [(1, false), (4, true), (5, false)], "{n} threads");
        }
    }
}
