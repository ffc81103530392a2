//! The 1.2.0 rules module guest: [`sandgate_matcher`] behind the
//! `sandgate:pattern@1.2.0` `flat-ips-module` world.
//!
//! Built, like the 1.0.0 guest (`patterns/guest`, whose `shared` module this
//! crate includes), once when Sandgate is built; the compiler patches the
//! rule-data descriptor. `inspect` reads the flat batch: 24 u32 words per
//! entry and 3 per application buffer (the layout in the WIT). Packets and
//! stream chunks are matched exactly as by the 1.0.0 guest, against the
//! rules that need no application layer; transaction entries (flow flag 8)
//! against the application-layer rules, with the entry's buffers. Nothing
//! is allocated per entry once the scratch vectors are warm.

use std::cell::RefCell;

use sandgate_matcher::{AppView, Direction as MDirection, PacketView, Scratch, FLOW_APP_TX};

wit_bindgen::generate!({
    path: "../../wit/v1.2.0",
    world: "flat-ips-module",
});

#[path = "../../guest/src/shared.rs"]
mod shared;

use exports::sandgate::pattern::flat_inspector::Guest;
use sandgate::pattern::types::{Action, Hit, ModuleInfo};
use shared::{action, matcher, BatchFlows};
pub use shared::{MAGIC0, MAGIC1};

/// u32 words per entry.
const ENTRY_WORDS: usize = 24;
/// u32 words per buffer descriptor.
const BUFFER_WORDS: usize = 3;

/// Per-instance working memory: matcher scratch, the rules found for one
/// entry, the flow-state cache and the entry's buffers.
#[derive(Default)]
struct Work {
    scratch: Scratch,
    found: Vec<u32>,
    flows: BatchFlows,
    /// (id, start, end) of the current entry's buffers in `data`.
    spans: Vec<(u32, usize, usize)>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

fn direction(code: u32) -> MDirection {
    match code {
        1 => MDirection::ToServer,
        2 => MDirection::ToClient,
        _ => MDirection::Unknown,
    }
}

fn addr(words: &[u32]) -> u128 {
    words
        .iter()
        .take(4)
        .fold(0u128, |acc, w| acc << 32 | u128::from(*w))
}

/// `data[off..off + len]`, or an error naming the entry and field.
fn slice<'a>(data: &'a [u8], off: u32, len: u32, what: &str, i: usize) -> Result<&'a [u8], String> {
    let start = off as usize;
    let end = start.saturating_add(len as usize);
    data.get(start..end).ok_or_else(|| {
        format!(
            "entry {i}: {what} {start}..{end} outside the data ({} bytes)",
            data.len()
        )
    })
}

struct RulesModule;

impl Guest for RulesModule {
    fn describe() -> ModuleInfo {
        shared::describe()
    }

    fn inspect(data: Vec<u8>, entries: Vec<u32>, buffers: Vec<u32>) -> Result<Vec<Hit>, String> {
        let m = matcher()?;
        let rules = &m.rule_set().rules;
        if !entries.len().is_multiple_of(ENTRY_WORDS) {
            return Err(format!(
                "entries: {} words, not a multiple of {ENTRY_WORDS}",
                entries.len()
            ));
        }
        WORK.with(|cell| {
            let mut guard = cell.borrow_mut();
            let Work {
                scratch,
                found,
                flows,
                spans,
            } = &mut *guard;
            let mut hits = Vec::new();
            let mut app_bufs: Vec<(u32, &[u8])> = Vec::new();
            for (i, e) in entries.chunks_exact(ENTRY_WORDS).enumerate() {
                let payload = match slice(&data, e[17], e[18], "payload", i) {
                    Ok(p) => p,
                    Err(err) => {
                        flows.flush();
                        return Err(err);
                    }
                };
                let l3 = slice(&data, e[14], e[15], "l3", i).unwrap_or(&[]);
                let flags = e[3];
                let view = PacketView {
                    flow_id: u64::from(e[0]) | u64::from(e[1]) << 32,
                    ip_version: e[4] as u8,
                    l3,
                    l4_offset: (e[16] as usize).saturating_sub(e[14] as usize),
                    protocol: (e[4] >> 8) as u8,
                    src: addr(&e[6..10]),
                    dst: addr(&e[10..14]),
                    src_port: e[5] as u16,
                    dst_port: (e[5] >> 16) as u16,
                    direction: direction(e[2]),
                    flow_flags: flags,
                    payload,
                };
                found.clear();
                if flags & FLOW_APP_TX == 0 {
                    m.matches_with(&view, scratch, flows, found);
                } else {
                    spans.clear();
                    let first = e[21] as usize;
                    let count = e[22] as usize;
                    for k in first..first.saturating_add(count) {
                        let Some(d) = buffers.get(k * BUFFER_WORDS..(k + 1) * BUFFER_WORDS) else {
                            flows.flush();
                            return Err(format!(
                                "entry {i}: buffer {k} outside the {} descriptors",
                                buffers.len() / BUFFER_WORDS
                            ));
                        };
                        let start = d[1] as usize;
                        let end = start.saturating_add(d[2] as usize);
                        if end > data.len() {
                            flows.flush();
                            return Err(format!(
                                "entry {i}: buffer {k} ({}) {start}..{end} outside the data",
                                sandgate_matcher::app::name(d[0])
                            ));
                        }
                        spans.push((d[0], start, end));
                    }
                    app_bufs.clear();
                    app_bufs.extend(spans.iter().map(|&(id, s, e)| (id, &data[s..e])));
                    let app = AppView {
                        proto: (e[4] >> 16) as u8,
                        buffers: &app_bufs,
                    };
                    m.matches_entry(&view, Some(&app), scratch, flows, found);
                }
                for &r in found.iter() {
                    let act = rules
                        .get(r as usize)
                        .map_or(Action::Alert, |rule| action(rule.meta.action));
                    hits.push(Hit {
                        packet: i as u32,
                        rule: r,
                        action: act,
                    });
                }
            }
            flows.flush();
            Ok(hits)
        })
    }
}

export!(RulesModule);
