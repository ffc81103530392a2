//! The rules module guest: [`sandgate_matcher`] behind the
//! `sandgate:pattern@1.0.0` `ips-module` world.
//!
//! This crate is compiled once, when Sandgate itself is built, to a core wasm
//! module for `wasm32-unknown-unknown` (no WASI imports). The pattern compiler
//! then appends the serialised rule set as a data segment, patches the
//! descriptor (`shared::DESCRIPTOR`) to point at it, and wraps the result as a component — so
//! compiling rules never invokes rustc.
//!
//! The descriptor is four little-endian `u32`s: two magic words the compiler
//! searches for, then the address and length of the rule data.
//!
//! Flowbits live in the engine, behind the `flow-state` import; `BatchFlows`
//! (module `shared`, also used by the 1.2.0 guest `patterns/flat-guest`)
//! caches each flow's state for one batch and writes it back once.

use std::cell::RefCell;

use sandgate_matcher::{Direction as MDirection, PacketView, Scratch};

wit_bindgen::generate!({
    path: "../../wit/v1.0.0",
    world: "ips-module",
});

mod shared;

use exports::sandgate::pattern::inspector::Guest;
use sandgate::pattern::types::{Action, Batch, Direction, Hit, ModuleInfo};
use shared::{action, matcher, BatchFlows};
pub use shared::{MAGIC0, MAGIC1};

thread_local! {
    static SCRATCH: RefCell<(Scratch, Vec<u32>, BatchFlows)> =
        RefCell::new((Scratch::default(), Vec::new(), BatchFlows::default()));
}

fn addr(a: sandgate::pattern::types::IpAddress) -> u128 {
    (u128::from(a.hi) << 64) | u128::from(a.lo)
}

struct RulesModule;

impl Guest for RulesModule {
    fn describe() -> ModuleInfo {
        shared::describe()
    }

    fn inspect(batch: Batch) -> Result<Vec<Hit>, String> {
        let m = matcher()?;
        let rules = &m.rule_set().rules;
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, found, flows) = &mut *guard;
            let mut hits = Vec::new();
            for (i, p) in batch.packets.iter().enumerate() {
                let start = p.payload_offset as usize;
                let end = start.saturating_add(p.payload_len as usize);
                let Some(payload) = batch.buffer.get(start..end) else {
                    flows.flush();
                    return Err(format!(
                        "packet {i}: payload {start}..{end} outside the batch buffer"
                    ));
                };
                let l3 = {
                    let s = p.l3_offset as usize;
                    batch
                        .buffer
                        .get(s..s.saturating_add(p.l3_len as usize))
                        .unwrap_or(&[])
                };
                let view = PacketView {
                    flow_id: p.flow_id,
                    ip_version: p.ip_version,
                    l3,
                    l4_offset: (p.l4_offset as usize).saturating_sub(p.l3_offset as usize),
                    protocol: p.protocol,
                    src: addr(p.src_addr),
                    dst: addr(p.dst_addr),
                    src_port: p.src_port,
                    dst_port: p.dst_port,
                    direction: match p.direction {
                        Direction::ToServer => MDirection::ToServer,
                        Direction::ToClient => MDirection::ToClient,
                        Direction::Unknown => MDirection::Unknown,
                    },
                    flow_flags: p.flow_flags,
                    payload,
                };
                found.clear();
                m.matches_with(&view, scratch, flows, found);
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
