//! Turning a compiled [`RuleSet`] (IPS, `sandgate:pattern@1.0.0`) or
//! [`AvDb`] (AV, `@1.1.0`) into a wasm component, without rustc.
//!
//! The matcher guests were compiled to core modules when Sandgate was built
//! ([`GUEST_WASM`], [`AV_GUEST_WASM`]). Emitting a module appends the serialised rule set as a
//! new data segment in pages past the module's initial memory (the guest's
//! allocator only ever uses pages it grows itself), patches the guest's
//! descriptor to point at it, wraps the core module as a component with
//! `wit-component`, and adds a `sandgate-manifest` custom section that the
//! engine reads before compiling anything.

use std::ops::Range;

use sandgate_matcher::av::AvDb;
use sandgate_matcher::RuleSet;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use wasmparser::{Parser, Payload};

/// The prebuilt matcher guest (core wasm module with the world embedded).
pub const GUEST_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sandgate_rules_guest.wasm"));

/// The prebuilt 1.2.0 matcher guest (`patterns/flat-guest`, world
/// `flat-ips-module`): the same matcher on the flat batch, with
/// application-layer buffers.
pub const FLAT_GUEST_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sandgate_flat_guest.wasm"));

/// The prebuilt AV guest (`patterns/av-guest`, world `av-module`).
pub const AV_GUEST_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sandgate_av_guest.wasm"));

/// Name of the custom section carrying a [`ModuleManifest`] as JSON.
pub const MANIFEST_SECTION: &str = "sandgate-manifest";

/// The rules guest's data descriptor magic (`patterns/guest/src/lib.rs`):
/// in the component's data, it is followed by the embedded rule set's
/// address and length (tools read the rule set back with it).
pub const RULES_MAGIC: [u32; 2] = [MAGIC0, MAGIC1];
const MAGIC0: u32 = 0x5d1a_7e23;
const MAGIC1: u32 = 0xc0de_5a9d;
const AV_MAGIC0: u32 = 0xa5c4_11e0;
const AV_MAGIC1: u32 = 0x5ca7_da7a;
const PAGE: u64 = 65536;

/// What a module says about itself before it is compiled: read by the
/// engine's load check and by `sandgate-patc inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleManifest {
    pub name: String,
    pub version: String,
    /// `ips` or `av`.
    pub kind: String,
    /// The interface version the module was built against (`1.0.0`).
    pub interface: String,
    pub rules: u32,
    /// SHA-256 of the rule data, hex.
    pub content_sha256: String,
}

/// Why a module could not be emitted.
#[derive(Debug, Error)]
pub enum EmitError {
    #[error("serialising the rule set: {0}")]
    Serialize(String),
    #[error("the matcher guest is malformed: {0}")]
    Guest(String),
    #[error("rule data of {0} bytes does not fit in 32-bit wasm memory")]
    TooLarge(usize),
    #[error("wrapping the module as a component: {0:#}")]
    Component(anyhow::Error),
}

/// Build the component for `set`.
pub fn rules_component(set: &RuleSet, manifest: &ModuleManifest) -> Result<Vec<u8>, EmitError> {
    rules_component_from_data(&rule_data(set)?, manifest)
}

/// Build the 1.2.0 (`flat-inspector`) component for `set`: the variant
/// that can carry application-layer rules.
pub fn flat_rules_component(
    set: &RuleSet,
    manifest: &ModuleManifest,
) -> Result<Vec<u8>, EmitError> {
    flat_rules_component_from_data(&rule_data(set)?, manifest)
}

/// [`rules_component`] from the set already serialised
/// ([`RuleSet::to_bytes`]), for callers that hash it too.
pub fn rules_component_from_data(
    data: &[u8],
    manifest: &ModuleManifest,
) -> Result<Vec<u8>, EmitError> {
    wrap(&embed_data(GUEST_WASM, [MAGIC0, MAGIC1], data)?, manifest)
}

/// [`flat_rules_component`] from the set already serialised.
pub fn flat_rules_component_from_data(
    data: &[u8],
    manifest: &ModuleManifest,
) -> Result<Vec<u8>, EmitError> {
    wrap(
        &embed_data(FLAT_GUEST_WASM, [MAGIC0, MAGIC1], data)?,
        manifest,
    )
}

/// `set` as the bytes a rules module embeds.
pub fn rule_data(set: &RuleSet) -> Result<Vec<u8>, EmitError> {
    set.to_bytes()
        .map_err(|e| EmitError::Serialize(e.to_string()))
}

/// Build the AV component for `db`: the data is a postcard `(name,
/// version)` header (from `manifest`) followed by the database bytes.
pub fn av_component(db: &AvDb, manifest: &ModuleManifest) -> Result<Vec<u8>, EmitError> {
    let mut blob = postcard::to_allocvec(&(&manifest.name, &manifest.version))
        .map_err(|e| EmitError::Serialize(e.to_string()))?;
    blob.extend_from_slice(&db.to_bytes());
    let core = embed_data(AV_GUEST_WASM, [AV_MAGIC0, AV_MAGIC1], &blob)?;
    wrap(&core, manifest)
}

fn wrap(core: &[u8], manifest: &ModuleManifest) -> Result<Vec<u8>, EmitError> {
    let mut component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .map_err(EmitError::Component)?
        .encode()
        .map_err(EmitError::Component)?;
    let json = serde_json::to_vec(manifest).map_err(|e| EmitError::Serialize(e.to_string()))?;
    append_custom_section(&mut component, MANIFEST_SECTION, &json);
    Ok(component)
}

/// Append a custom section (id 0) to a core module or component.
pub fn append_custom_section(wasm: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut body = Vec::new();
    leb_u32(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    wasm.push(0);
    leb_u32(wasm, body.len() as u32);
    wasm.extend_from_slice(&body);
}

/// Place `blob` in fresh pages after the guest's initial memory and point
/// the guest's descriptor at it.
fn embed_data(guest: &[u8], magic: [u32; 2], blob: &[u8]) -> Result<Vec<u8>, EmitError> {
    let guest_err = |m: String| EmitError::Guest(m);
    let mut memory: Option<(u64, Option<u64>)> = None;
    let mut data: Option<(Range<usize>, u32)> = None;
    let mut sections: Vec<(u8, Range<usize>)> = Vec::new();
    for payload in Parser::new(0).parse_all(guest) {
        let payload = payload.map_err(|e| guest_err(e.to_string()))?;
        match &payload {
            Payload::MemorySection(reader) => {
                let mems: Vec<_> = reader
                    .clone()
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(|e| guest_err(e.to_string()))?;
                let [mem] = mems.as_slice() else {
                    return Err(guest_err(format!("{} memories, expected 1", mems.len())));
                };
                memory = Some((mem.initial, mem.maximum));
            }
            Payload::DataSection(reader) => {
                data = Some((reader.range(), reader.count()));
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, range));
        }
    }
    let (initial, maximum) = memory.ok_or_else(|| guest_err("no memory".into()))?;
    let (data_range, count) = data.ok_or_else(|| guest_err("no data section".into()))?;

    let addr = initial * PAGE;
    let extra = (blob.len() as u64).div_ceil(PAGE);
    let new_initial = initial + extra;
    if addr + blob.len() as u64 > u64::from(u32::MAX) || new_initial > 65536 {
        return Err(EmitError::TooLarge(blob.len()));
    }
    if maximum.is_some_and(|m| m < new_initial) {
        return Err(EmitError::TooLarge(blob.len()));
    }

    // Patch the descriptor inside the existing data segments.
    let mut patched = guest.to_vec();
    let magic: Vec<u8> = [magic[0].to_le_bytes(), magic[1].to_le_bytes()].concat();
    let hay = &guest[data_range.clone()];
    let hits: Vec<usize> = hay
        .windows(magic.len())
        .enumerate()
        .filter(|(_, w)| *w == magic.as_slice())
        .map(|(i, _)| i)
        .collect();
    let [at] = hits.as_slice() else {
        return Err(guest_err(format!(
            "{} data descriptors, expected 1",
            hits.len()
        )));
    };
    let at = data_range.start + at + magic.len();
    patched[at..at + 4].copy_from_slice(&(addr as u32).to_le_bytes());
    patched[at + 4..at + 8].copy_from_slice(&(blob.len() as u32).to_le_bytes());

    // Re-emit the module: new memory minimum, one more data segment.
    let mut out = Vec::with_capacity(patched.len() + blob.len() + 64);
    out.extend_from_slice(&patched[..8]);
    for (id, range) in sections {
        let body = &patched[range.clone()];
        let new_body = match id {
            5 => {
                let mut b = Vec::new();
                leb_u32(&mut b, 1);
                match maximum {
                    Some(max) => {
                        b.push(1);
                        leb_u64(&mut b, new_initial);
                        leb_u64(&mut b, max);
                    }
                    None => {
                        b.push(0);
                        leb_u64(&mut b, new_initial);
                    }
                }
                b
            }
            11 => {
                let skip = leb_len(body).ok_or_else(|| guest_err("bad data count".into()))?;
                let mut b = Vec::with_capacity(body.len() + blob.len() + 16);
                leb_u32(&mut b, count + 1);
                b.extend_from_slice(&body[skip..]);
                b.push(0); // active segment, memory 0
                b.push(0x41); // i32.const
                leb_i32(&mut b, addr as u32 as i32);
                b.push(0x0b); // end
                leb_u32(&mut b, blob.len() as u32);
                b.extend_from_slice(blob);
                b
            }
            12 => {
                let mut b = Vec::new();
                leb_u32(&mut b, count + 1);
                b
            }
            _ => body.to_vec(),
        };
        out.push(id);
        leb_u32(&mut out, new_body.len() as u32);
        out.extend_from_slice(&new_body);
    }
    Ok(out)
}

fn leb_len(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| b & 0x80 == 0).map(|p| p + 1)
}

fn leb_u32(out: &mut Vec<u8>, v: u32) {
    leb_u64(out, u64::from(v));
}

fn leb_u64(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn leb_i32(out: &mut Vec<u8>, v: i32) {
    let mut v = i64::from(v);
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_module_validates_and_componentizes() {
        let set = RuleSet::new("t", "1");
        let manifest = ModuleManifest {
            name: "t".into(),
            version: "1".into(),
            kind: "ips".into(),
            interface: "1.0.0".into(),
            rules: 0,
            content_sha256: String::new(),
        };
        let c = rules_component(&set, &manifest).expect("emit");
        assert!(wasmparser::Parser::is_component(&c));
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&c)
            .expect("valid component");
    }

    #[test]
    fn av_module_validates_and_exports_the_1_1_scanner() {
        let out = crate::av::compile_databases(
            &[crate::av::DbFile {
                name: "t.ndb",
                text: "Test.Sig:0:*:6162636465666768\n",
            }],
            crate::av::CLAMAV_FLEVEL,
        );
        assert_eq!(out.db.len(), 1, "{:?} {:?}", out.skipped, out.errors);
        let manifest = ModuleManifest {
            name: "av".into(),
            version: "1".into(),
            kind: "av".into(),
            interface: "1.1.0".into(),
            rules: 1,
            content_sha256: String::new(),
        };
        let c = av_component(&out.db, &manifest).expect("emit");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&c)
            .expect("valid component");
        let exports = wasmparser::Parser::new(0)
            .parse_all(&c)
            .filter_map(Result::ok)
            .filter_map(|p| match p {
                wasmparser::Payload::ComponentExportSection(r) => Some(
                    r.into_iter()
                        .filter_map(Result::ok)
                        .map(|e| e.name.name.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect::<Vec<_>>();
        assert!(
            exports.contains(&"sandgate:pattern/scanner@1.1.0".to_string()),
            "{exports:?}"
        );
    }
}
