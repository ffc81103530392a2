//! The bundle: one file carrying a JSON manifest and the module components
//! it lists, each checked against its SHA-256 on read.
//!
//! Layout: the 8-byte magic `SGBNDL\0\x01`, the manifest length as a
//! little-endian `u32`, the manifest JSON, then the module bytes at the
//! offsets the manifest gives (relative to the end of the manifest).
//! Signatures, variants per engine range and test vectors extend the
//! manifest in later format versions.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// First bytes of every bundle file.
pub const BUNDLE_MAGIC: &[u8; 8] = b"SGBNDL\x00\x01";
/// Largest manifest the reader accepts.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// Manifest format this code writes and reads.
pub const FORMAT: u32 = 1;

/// The bundle's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    /// Monotonic bundle version (anti-rollback compares it).
    pub version: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    pub modules: Vec<ModuleEntry>,
}

/// One module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    pub id: String,
    pub version: String,
    /// `ips` or `av`.
    pub kind: String,
    /// Interface version the module needs, e.g. `1.0.0`.
    pub interface: String,
    pub rules: u32,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
    pub offset: u64,
    pub len: u64,
}

/// A bundle in memory: manifest plus each module's component bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub manifest: BundleManifest,
    pub modules: Vec<Vec<u8>>,
}

/// Why a bundle could not be read or written. Always names the file.
#[derive(Debug, Error)]
#[error("bundle {path}: {kind}")]
pub struct BundleError {
    pub path: String,
    pub kind: BundleErrorKind,
}

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
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Bundle {
    /// Assemble a bundle from entries (offset/len/sha256 filled in here).
    pub fn new(version: u64, created_unix: u64, modules: Vec<(ModuleEntry, Vec<u8>)>) -> Self {
        let mut offset = 0u64;
        let mut entries = Vec::with_capacity(modules.len());
        let mut bytes = Vec::with_capacity(modules.len());
        for (mut entry, module) in modules {
            entry.offset = offset;
            entry.len = module.len() as u64;
            entry.sha256 = sha256_hex(&module);
            offset += entry.len;
            entries.push(entry);
            bytes.push(module);
        }
        Bundle {
            manifest: BundleManifest {
                format: FORMAT,
                version,
                created_unix,
                modules: entries,
            },
            modules: bytes,
        }
    }

    /// Serialise to the on-disk layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A manifest of plain strings and numbers always serialises.
        let json = serde_json::to_vec(&self.manifest).unwrap_or_default();
        let mut out =
            Vec::with_capacity(12 + json.len() + self.modules.iter().map(Vec::len).sum::<usize>());
        out.extend_from_slice(BUNDLE_MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for m in &self.modules {
            out.extend_from_slice(m);
        }
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

    /// Read and verify a bundle file.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| BundleError {
            path: name.clone(),
            kind: e.into(),
        })?;
        Self::from_bytes(&bytes, &name)
    }

    /// Parse and verify bundle bytes; `name` is used in errors.
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
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if len > MAX_MANIFEST_BYTES {
            return Err(err(BundleErrorKind::Manifest(format!(
                "{len} bytes, over the {MAX_MANIFEST_BYTES}-byte limit"
            ))));
        }
        let json = bytes.get(12..12 + len).ok_or_else(|| {
            err(BundleErrorKind::Truncated(format!(
                "manifest of {len} bytes, file has {}",
                bytes.len() - 12
            )))
        })?;
        let manifest: BundleManifest = serde_json::from_slice(json)
            .map_err(|e| err(BundleErrorKind::Manifest(e.to_string())))?;
        if manifest.format > FORMAT {
            return Err(err(BundleErrorKind::Format(manifest.format)));
        }
        let body = &bytes[12 + len..];
        let mut modules = Vec::with_capacity(manifest.modules.len());
        for m in &manifest.modules {
            let range = usize::try_from(m.offset)
                .ok()
                .zip(usize::try_from(m.len).ok())
                .and_then(|(o, l)| Some(o..o.checked_add(l)?))
                .and_then(|r| body.get(r));
            let module = range.ok_or_else(|| {
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
        Ok(Bundle { manifest, modules })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> ModuleEntry {
        ModuleEntry {
            id: id.into(),
            version: "1".into(),
            kind: "ips".into(),
            interface: "1.0.0".into(),
            rules: 1,
            sha256: String::new(),
            offset: 0,
            len: 0,
        }
    }

    #[test]
    fn round_trip() {
        let b = Bundle::new(
            7,
            1,
            vec![(entry("a"), vec![1, 2, 3]), (entry("b"), vec![4])],
        );
        let back = Bundle::from_bytes(&b.to_bytes(), "t").expect("reads");
        assert_eq!(back, b);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = Bundle::new(7, 1, vec![(entry("a"), vec![9; 100])]).to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                Bundle::from_bytes(&bytes[..cut], "t").is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn tampered_module_fails_its_hash() {
        let mut bytes = Bundle::new(7, 1, vec![(entry("a"), vec![9; 100])]).to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let e = Bundle::from_bytes(&bytes, "x.sgb").expect_err("tampered");
        assert!(matches!(e.kind, BundleErrorKind::Hash { .. }), "{e}");
        assert!(e.to_string().starts_with("bundle x.sgb: module `a`"), "{e}");
    }
}
