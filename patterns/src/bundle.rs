//! The bundle: one file carrying a manifest, the module variants it lists,
//! each module's test vectors, and a detached Ed25519 signature.
//!
//! Layout (format 2; all integers little-endian):
//!
//! ```text
//! "SGBNDL\0\x01"  magic (8 bytes; the container, not the manifest format)
//! u32             manifest length
//! manifest JSON   BundleManifest, canonical (exactly as serde_json writes it)
//! u32             signature block length: 0 (unsigned) or 72
//! signature       8-byte key id + Ed25519 signature over the manifest bytes
//! body            variants and vector captures at the manifest's offsets
//! ```
//!
//! Format 1 (still read) has no signature block: the body follows the
//! manifest. A format-1 reader meets a format-2 file at the manifest's
//! `format` field and refuses it by name.
//!
//! A *module* is every [`ModuleEntry`] sharing an `id`; each entry is one
//! *variant* of it, built for the interface version in `interface`. Reading
//! checks structure and every SHA-256; checking who signed it is the separate,
//! explicit [`Bundle::verify`]. Since the manifest must be canonical and holds
//! every hash, the signature covers exactly what the reader acts on.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::field::{offers, Version};
use crate::sign::{self, KeyId, PrivateKey, PublicKey, Purpose, SignatureBlock, VerifyError};
use crate::vectors::ExpectedAlert;

/// First bytes of every bundle file.
pub const BUNDLE_MAGIC: &[u8; 8] = b"SGBNDL\x00\x01";
/// Largest manifest the reader accepts.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// Manifest format this code writes (and the newest it reads).
pub const FORMAT: u32 = 2;
/// The first format: no signature, no vectors; still read.
pub const FORMAT_V1: u32 = 1;

/// The bundle's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    /// Monotonic bundle version (anti-rollback compares it).
    pub version: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Every variant of every module; entries sharing an `id` are variants
    /// of one module.
    pub modules: Vec<ModuleEntry>,
    /// Test vectors, at most one set per module (format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vectors: Vec<VectorEntry>,
}

/// One variant of a module: its identity, the interface version it needs
/// and where its component lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    pub id: String,
    pub version: String,
    /// `ips` or `av`.
    pub kind: String,
    /// Interface version this variant needs, e.g. `1.0.0`.
    pub interface: String,
    pub rules: u32,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
    pub offset: u64,
    pub len: u64,
}

/// A module's test vectors: a capture and the alerts it must produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorEntry {
    /// The module id the vectors test.
    pub module: String,
    /// SHA-256 of the capture (pcap) bytes, hex.
    pub sha256: String,
    pub offset: u64,
    pub len: u64,
    /// `(sid, count)` the capture must raise, sorted by sid.
    pub expect: Vec<ExpectedAlert>,
}

/// A bundle in memory.
///
/// `modules` and `vectors` hold the bytes for `manifest.modules` and
/// `manifest.vectors`, index for index. Build one with [`Bundle::new`] and
/// [`Bundle::set_vectors`], which keep offsets and hashes right; changing the
/// fields directly leaves them stale.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: BundleManifest,
    /// Component bytes of each variant.
    pub modules: Vec<Vec<u8>>,
    /// Capture bytes of each vector set.
    pub vectors: Vec<Vec<u8>>,
    /// The detached signature over the manifest, if signed.
    pub signature: Option<SignatureBlock>,
    /// Where the bundle came from, for errors (not compared).
    origin: String,
}

impl PartialEq for Bundle {
    fn eq(&self, other: &Self) -> bool {
        self.manifest == other.manifest
            && self.modules == other.modules
            && self.vectors == other.vectors
            && self.signature == other.signature
    }
}

impl Eq for Bundle {}

/// Why a bundle could not be read, written or verified. Always names the file.
#[derive(Debug, Error)]
#[error("bundle {path}: {kind}")]
pub struct BundleError {
    pub path: String,
    pub kind: BundleErrorKind,
}

/// What is wrong with a bundle.
#[derive(Debug, Error)]
pub enum BundleErrorKind {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a Sandgate bundle (bad magic)")]
    BadMagic,
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("manifest is not valid: {0}")]
    Manifest(String),
    #[error("manifest format {0} is newer than this engine reads ({FORMAT})")]
    Format(u32),
    #[error("module `{id}`: bytes at {offset}+{len} lie outside the file")]
    OutOfBounds { id: String, offset: u64, len: u64 },
    #[error("module `{id}`: SHA-256 mismatch (manifest {want}, content {got})")]
    Hash {
        id: String,
        want: String,
        got: String,
    },
    #[error(
        "test vectors of module `{module}`: SHA-256 mismatch (manifest {want}, content {got})"
    )]
    VectorHash {
        module: String,
        want: String,
        got: String,
    },
    #[error("signature block of {0} bytes (expected 0 or {len})", len = sign::SIGNATURE_BLOCK_LEN)]
    SignatureBlock(usize),
    #[error("unsigned: no signature to verify")]
    Unsigned,
    #[error("signed by key {signed_by}, not by the expected key {expected}")]
    WrongKey { signed_by: KeyId, expected: KeyId },
    #[error("bad signature: the manifest does not match the signature of key {key}")]
    BadSignature { key: KeyId },
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The variant an engine should load for each module, and the modules it
/// cannot run at all.
#[derive(Debug)]
pub struct Selection<'a> {
    /// Per module (in bundle order), the newest variant the engine serves.
    pub chosen: Vec<(&'a ModuleEntry, &'a [u8])>,
    /// Modules with no such variant: id and the interfaces their variants need.
    pub unavailable: Vec<(String, Vec<String>)>,
}

impl Bundle {
    /// Assemble an unsigned bundle; offsets, lengths and hashes are filled in
    /// here. Entries sharing an id are variants of one module.
    pub fn new(version: u64, created_unix: u64, modules: Vec<(ModuleEntry, Vec<u8>)>) -> Self {
        let (entries, bytes) = modules.into_iter().unzip();
        let mut b = Bundle {
            manifest: BundleManifest {
                format: FORMAT,
                version,
                created_unix,
                modules: entries,
                vectors: Vec::new(),
            },
            modules: bytes,
            vectors: Vec::new(),
            signature: None,
            origin: "<memory>".into(),
        };
        b.layout();
        b
    }

    /// Attach (or replace) the test vectors of `module`. Drops any signature:
    /// the manifest changed.
    pub fn set_vectors(&mut self, module: &str, pcap: Vec<u8>, expect: Vec<ExpectedAlert>) {
        let mut expect = expect;
        expect.sort();
        let entry = VectorEntry {
            module: module.to_string(),
            sha256: String::new(),
            offset: 0,
            len: 0,
            expect,
        };
        match self
            .manifest
            .vectors
            .iter()
            .position(|v| v.module == module)
        {
            Some(i) => {
                self.manifest.vectors[i] = entry;
                self.vectors[i] = pcap;
            }
            None => {
                self.manifest.vectors.push(entry);
                self.vectors.push(pcap);
            }
        }
        self.layout();
    }

    /// Lay variants then captures end to end and record their hashes.
    fn layout(&mut self) {
        self.signature = None;
        let mut offset = 0u64;
        for (e, b) in self.manifest.modules.iter_mut().zip(&self.modules) {
            e.offset = offset;
            e.len = b.len() as u64;
            e.sha256 = sha256_hex(b);
            offset += e.len;
        }
        for (e, b) in self.manifest.vectors.iter_mut().zip(&self.vectors) {
            e.offset = offset;
            e.len = b.len() as u64;
            e.sha256 = sha256_hex(b);
            offset += e.len;
        }
    }

    /// The manifest exactly as it is written and signed.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        // A manifest of plain strings and numbers always serialises.
        serde_json::to_vec(&self.manifest).unwrap_or_default()
    }

    /// Sign the manifest with `key` (replacing any signature).
    pub fn sign(&mut self, key: &PrivateKey) {
        self.signature = Some(sign::sign(
            key,
            Purpose::BundleManifest,
            &self.manifest_bytes(),
        ));
    }

    /// Check that `key` signed this manifest: [`BundleErrorKind::Unsigned`],
    /// [`BundleErrorKind::WrongKey`] or [`BundleErrorKind::BadSignature`]
    /// otherwise.
    pub fn verify(&self, key: &PublicKey) -> Result<(), BundleError> {
        let err = |kind| BundleError {
            path: self.origin.clone(),
            kind,
        };
        let block = self
            .signature
            .as_ref()
            .ok_or_else(|| err(BundleErrorKind::Unsigned))?;
        sign::verify(key, Purpose::BundleManifest, &self.manifest_bytes(), block).map_err(|e| {
            err(match e {
                VerifyError::WrongKey {
                    signed_by,
                    expected,
                } => BundleErrorKind::WrongKey {
                    signed_by,
                    expected,
                },
                VerifyError::BadSignature { key } => BundleErrorKind::BadSignature { key },
            })
        })
    }

    /// Module ids in order of first appearance.
    pub fn module_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for e in &self.manifest.modules {
            if !ids.contains(&e.id.as_str()) {
                ids.push(&e.id);
            }
        }
        ids
    }

    /// Every variant of module `id`.
    pub fn variants<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = (&'a ModuleEntry, &'a [u8])> {
        self.manifest
            .modules
            .iter()
            .zip(&self.modules)
            .filter(move |(e, _)| e.id == id)
            .map(|(e, b)| (e, b.as_slice()))
    }

    /// The test vectors of module `id`, if it has any.
    pub fn vectors_for(&self, id: &str) -> Option<(&VectorEntry, &[u8])> {
        self.manifest
            .vectors
            .iter()
            .zip(&self.vectors)
            .find(|(v, _)| v.module == id)
            .map(|(v, b)| (v, b.as_slice()))
    }

    /// For an engine implementing `offered` interface versions, the newest
    /// variant of each module it can serve (by semver), and the modules it
    /// cannot run.
    pub fn select(&self, offered: &[String]) -> Selection<'_> {
        let mut chosen = Vec::new();
        let mut unavailable = Vec::new();
        for id in self.module_ids() {
            let best = self
                .variants(id)
                .filter(|(e, _)| offers(offered, &e.interface))
                .max_by_key(|(e, _)| e.interface.parse::<Version>().ok());
            match best {
                Some(v) => chosen.push(v),
                None => unavailable.push((
                    id.to_string(),
                    self.variants(id)
                        .map(|(e, _)| e.interface.clone())
                        .collect(),
                )),
            }
        }
        Selection {
            chosen,
            unavailable,
        }
    }

    /// Serialise to the on-disk layout of the manifest's format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = self.manifest_bytes();
        let mut body = Vec::new();
        let placed = (self.manifest.modules.iter().map(|e| e.offset))
            .zip(&self.modules)
            .chain(
                self.manifest
                    .vectors
                    .iter()
                    .map(|e| e.offset)
                    .zip(&self.vectors),
            );
        for (offset, bytes) in placed {
            let Ok(at) = usize::try_from(offset) else {
                continue;
            };
            let end = at.saturating_add(bytes.len());
            if body.len() < end {
                body.resize(end, 0);
            }
            body[at..end].copy_from_slice(bytes);
        }
        let mut out = Vec::with_capacity(16 + json.len() + sign::SIGNATURE_BLOCK_LEN + body.len());
        out.extend_from_slice(BUNDLE_MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        if self.manifest.format >= 2 {
            match &self.signature {
                Some(s) => {
                    out.extend_from_slice(&(sign::SIGNATURE_BLOCK_LEN as u32).to_le_bytes());
                    out.extend_from_slice(&s.to_bytes());
                }
                None => out.extend_from_slice(&0u32.to_le_bytes()),
            }
        }
        out.extend_from_slice(&body);
        out
    }

    /// Write atomically: a temporary file in the same directory, then rename.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let err = |e: std::io::Error| BundleError {
            path: path.display().to_string(),
            kind: e.into(),
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_bytes()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Read a bundle file and check its structure and hashes (not its
    /// signature: see [`Bundle::verify`]).
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| BundleError {
            path: name.clone(),
            kind: e.into(),
        })?;
        Self::from_bytes(&bytes, &name)
    }

    /// Parse bundle bytes and check structure and hashes; `name` is used in
    /// errors. Never panics, whatever the bytes.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, BundleError> {
        let err = |kind| BundleError {
            path: name.to_string(),
            kind,
        };
        if bytes.len() < 12 {
            if bytes.len() >= 8 || !BUNDLE_MAGIC.starts_with(bytes) {
                return Err(err(BundleErrorKind::BadMagic));
            }
            return Err(err(BundleErrorKind::Truncated(format!(
                "{} bytes",
                bytes.len()
            ))));
        }
        if &bytes[..8] != BUNDLE_MAGIC {
            return Err(err(BundleErrorKind::BadMagic));
        }
        let (len, rest) = read_u32(&bytes[8..]).ok_or_else(|| err(truncated("header")))?;
        let len = len as usize;
        if len > MAX_MANIFEST_BYTES {
            return Err(err(BundleErrorKind::Manifest(format!(
                "{len} bytes, over the {MAX_MANIFEST_BYTES}-byte limit"
            ))));
        }
        let json = rest.get(..len).ok_or_else(|| {
            err(BundleErrorKind::Truncated(format!(
                "manifest of {len} bytes, file has {}",
                rest.len()
            )))
        })?;
        let mut rest = &rest[len..];
        let manifest: BundleManifest = serde_json::from_slice(json)
            .map_err(|e| err(BundleErrorKind::Manifest(e.to_string())))?;
        let mut signature = None;
        match manifest.format {
            FORMAT_V1 => {
                if !manifest.vectors.is_empty() {
                    return Err(err(BundleErrorKind::Manifest(
                        "format 1 carries no test vectors".into(),
                    )));
                }
            }
            FORMAT => {
                if serde_json::to_vec(&manifest).ok().as_deref() != Some(json) {
                    return Err(err(BundleErrorKind::Manifest(
                        "not in canonical form (it must be byte for byte what the writer emits)"
                            .into(),
                    )));
                }
                let (sig_len, after) =
                    read_u32(rest).ok_or_else(|| err(truncated("signature length")))?;
                let sig_len = sig_len as usize;
                if sig_len != 0 && sig_len != sign::SIGNATURE_BLOCK_LEN {
                    return Err(err(BundleErrorKind::SignatureBlock(sig_len)));
                }
                let block = after
                    .get(..sig_len)
                    .ok_or_else(|| err(truncated("signature block")))?;
                if sig_len != 0 {
                    signature = SignatureBlock::from_bytes(block);
                }
                rest = &after[sig_len..];
            }
            0 => {
                return Err(err(BundleErrorKind::Manifest(
                    "format 0 is not a format".into(),
                )));
            }
            newer => return Err(err(BundleErrorKind::Format(newer))),
        }
        validate(&manifest).map_err(|m| err(BundleErrorKind::Manifest(m)))?;
        let body = rest;
        let mut modules = Vec::with_capacity(manifest.modules.len());
        for m in &manifest.modules {
            let module = slice(body, m.offset, m.len).ok_or_else(|| {
                err(BundleErrorKind::OutOfBounds {
                    id: m.id.clone(),
                    offset: m.offset,
                    len: m.len,
                })
            })?;
            let got = sha256_hex(module);
            if !got.eq_ignore_ascii_case(&m.sha256) {
                return Err(err(BundleErrorKind::Hash {
                    id: m.id.clone(),
                    want: m.sha256.clone(),
                    got,
                }));
            }
            modules.push(module.to_vec());
        }
        let mut vectors = Vec::with_capacity(manifest.vectors.len());
        for v in &manifest.vectors {
            let pcap = slice(body, v.offset, v.len).ok_or_else(|| {
                err(BundleErrorKind::OutOfBounds {
                    id: format!("{} (test vectors)", v.module),
                    offset: v.offset,
                    len: v.len,
                })
            })?;
            let got = sha256_hex(pcap);
            if !got.eq_ignore_ascii_case(&v.sha256) {
                return Err(err(BundleErrorKind::VectorHash {
                    module: v.module.clone(),
                    want: v.sha256.clone(),
                    got,
                }));
            }
            vectors.push(pcap.to_vec());
        }
        Ok(Bundle {
            manifest,
            modules,
            vectors,
            signature,
            origin: name.to_string(),
        })
    }
}

fn truncated(what: &str) -> BundleErrorKind {
    BundleErrorKind::Truncated(format!("ends inside the {what}"))
}

fn read_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some((u32::from_le_bytes(head), &bytes[4..]))
}

fn slice(body: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    body.get(start..end)
}

/// Structural rules a reader enforces beyond JSON shape.
fn validate(m: &BundleManifest) -> Result<(), String> {
    let mut by_id: BTreeMap<&str, &ModuleEntry> = BTreeMap::new();
    let mut variants = std::collections::BTreeSet::new();
    for e in &m.modules {
        if e.id.is_empty() {
            return Err("a module has an empty id".into());
        }
        e.interface
            .parse::<Version>()
            .map_err(|b| format!("module `{}`: interface {b}", e.id))?;
        if !variants.insert((e.id.as_str(), e.interface.as_str())) {
            return Err(format!(
                "module `{}` has two variants for interface {}",
                e.id, e.interface
            ));
        }
        if let Some(first) = by_id.insert(&e.id, e) {
            if first.version != e.version || first.kind != e.kind {
                return Err(format!(
                    "variants of module `{}` disagree on version or kind",
                    e.id
                ));
            }
        }
    }
    let mut tested = std::collections::BTreeSet::new();
    for v in &m.vectors {
        if !by_id.contains_key(v.module.as_str()) {
            return Err(format!("test vectors for unknown module `{}`", v.module));
        }
        if !tested.insert(v.module.as_str()) {
            return Err(format!(
                "module `{}` has two sets of test vectors",
                v.module
            ));
        }
        if v.expect.windows(2).any(|w| w[0].sid >= w[1].sid) {
            return Err(format!(
                "test vectors of module `{}`: expectations not sorted by sid or repeated",
                v.module
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
