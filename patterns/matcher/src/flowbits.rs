//! Per-flow `flowbits` state. The state lives in the engine's flow table,
//! not in the module: the matcher reads and writes it through
//! [`FlowStore`], which the wasm guest implements over the WIT `flow-state`
//! import and native callers (tests, benchmarks) with [`MemoryFlowStore`].
//!
//! The stored blob is a 4-byte tag (a hash of the module's flowbit names, so
//! state written by a differently-numbered rule set reads as empty) followed
//! by the bitset, trailing zero bytes trimmed; all-clear is stored as empty.

use std::collections::HashMap;

/// Largest blob the engine keeps per flow (WIT `flow-state` cap).
pub const MAX_STATE_BYTES: usize = 256;
/// Most distinct flowbit names one rule set may use.
pub const MAX_FLOWBITS: usize = (MAX_STATE_BYTES - 4) * 8;

/// Where per-flow state is kept between packets.
pub trait FlowStore {
    /// Copy the flow's stored blob into `into` (left empty when none).
    fn load(&mut self, flow: u64, into: &mut Vec<u8>);
    /// Replace the flow's blob; an empty one clears it.
    fn store(&mut self, flow: u64, blob: &[u8]);
}

/// A store that keeps nothing: flowbits only live for one packet.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFlowStore;

impl FlowStore for NoFlowStore {
    fn load(&mut self, _flow: u64, into: &mut Vec<u8>) {
        into.clear();
    }

    fn store(&mut self, _flow: u64, _blob: &[u8]) {}
}

/// An in-memory store, for native use and tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryFlowStore {
    pub flows: HashMap<u64, Vec<u8>>,
}

impl FlowStore for MemoryFlowStore {
    fn load(&mut self, flow: u64, into: &mut Vec<u8>) {
        into.clear();
        if let Some(b) = self.flows.get(&flow) {
            into.extend_from_slice(b);
        }
    }

    fn store(&mut self, flow: u64, blob: &[u8]) {
        if blob.is_empty() {
            self.flows.remove(&flow);
        } else {
            self.flows.insert(flow, blob.to_vec());
        }
    }
}

/// FNV-1a over the flowbit names: the tag that guards a blob's numbering.
pub fn names_tag(names: &[String]) -> [u8; 4] {
    let mut h: u32 = 0x811c_9dc5;
    for n in names {
        for &b in n.as_bytes().iter().chain(std::iter::once(&0)) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h.to_le_bytes()
}

/// The flowbits of the packet being evaluated (a view over scratch memory).
#[derive(Debug, Default)]
pub struct Bits {
    /// Tag followed by the bitset (possibly shorter than the name count).
    pub blob: Vec<u8>,
    pub dirty: bool,
}

impl Bits {
    /// Load `flow`'s state, discarding it if its tag is not `tag`.
    pub fn load(&mut self, store: &mut dyn FlowStore, flow: u64, tag: [u8; 4]) {
        self.dirty = false;
        store.load(flow, &mut self.blob);
        if self.blob.get(..4) != Some(&tag[..]) {
            self.blob.clear();
            self.blob.extend_from_slice(&tag);
        }
    }

    pub fn get(&self, bit: u16) -> bool {
        let (byte, mask) = (4 + usize::from(bit / 8), 1u8 << (bit % 8));
        self.blob.get(byte).is_some_and(|b| b & mask != 0)
    }

    pub fn set(&mut self, bit: u16, on: bool) {
        let (byte, mask) = (4 + usize::from(bit / 8), 1u8 << (bit % 8));
        if byte >= MAX_STATE_BYTES {
            return;
        }
        if self.blob.len() <= byte {
            if !on {
                return;
            }
            self.blob.resize(byte + 1, 0);
        }
        if let Some(b) = self.blob.get_mut(byte) {
            let new = if on { *b | mask } else { *b & !mask };
            self.dirty |= new != *b;
            *b = new;
        }
    }

    /// Write back if changed: trailing zeros trimmed, empty when all clear.
    pub fn save(&mut self, store: &mut dyn FlowStore, flow: u64) {
        if !self.dirty {
            return;
        }
        while self.blob.len() > 4 && self.blob.last() == Some(&0) {
            self.blob.pop();
        }
        if self.blob.len() <= 4 {
            store.store(flow, &[]);
        } else {
            store.store(flow, &self.blob);
        }
        self.dirty = false;
    }
}
