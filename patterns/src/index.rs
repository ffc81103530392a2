//! The publish index: what an appliance downloads, and whether it should yet.
//!
//! `sandgate-patc publish` writes `index.json` and its detached signature
//! `index.json.sig` (a 72-byte [`SignatureBlock`]) next to the bundle file,
//! for any static HTTP server. The index lists, per engine range (the
//! interface versions a group of field engines implements), the bundle file,
//! its size and SHA-256, and the variant of each module that range loads.
//!
//! The appliance side: [`Index::from_signed`] (verify, then parse),
//! [`Index::entry_for`] (which download), [`IndexEntry::check_download`],
//! [`Index::selected`] / [`rollout_selected`] (staged rollout) and
//! [`is_upgrade`] (anti-rollback).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::bundle::sha256_hex;
use crate::field::offers;
use crate::sign::{self, KeyId, PrivateKey, PublicKey, Purpose, SignatureBlock, VerifyError};

/// Index format this code writes and reads.
pub const INDEX_FORMAT: u32 = 1;
/// File name of the index in a publish directory.
pub const INDEX_FILE: &str = "index.json";
/// File name of the index's detached signature.
pub const INDEX_SIG_FILE: &str = "index.json.sig";

/// The signed table of contents of a publish directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: u32,
    /// The bundle's monotonic version.
    pub bundle_version: u64,
    /// The bundle's creation time (Unix seconds).
    pub created_unix: u64,
    /// When it was published (Unix seconds).
    pub published_unix: u64,
    /// Id of the key that signed the index and the bundle (informational).
    pub key_id: String,
    /// Staged rollout; absent means every appliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// One entry per engine range.
    pub entries: Vec<IndexEntry>,
}

/// A staged rollout: the share of the fleet that takes this bundle now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// 0–100; which appliances are in is [`rollout_selected`].
    pub percent: u8,
}

/// What engines implementing `interfaces` download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The interface versions of the engine range, as the field list gives them.
    pub interfaces: Vec<String>,
    /// Field engines in this range (`name release`), for people.
    pub engines: Vec<String>,
    /// Bundle file name, relative to the index.
    pub file: String,
    pub size: u64,
    /// SHA-256 of the whole bundle file, hex.
    pub sha256: String,
    /// The variant of each module this range loads.
    pub variants: Vec<IndexVariant>,
}

/// One module's variant for an engine range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexVariant {
    pub module: String,
    pub interface: String,
    /// SHA-256 of the variant's component, hex (as in the bundle manifest).
    pub sha256: String,
}

/// Why an index or a download was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IndexError {
    #[error("{INDEX_FILE} is unsigned ({INDEX_SIG_FILE} missing or empty)")]
    Unsigned,
    #[error("{INDEX_SIG_FILE} is {0} bytes, not a signature block ({len})", len = sign::SIGNATURE_BLOCK_LEN)]
    SignatureBlock(usize),
    #[error("{INDEX_FILE} signed by key {signed_by}, not by the expected key {expected}")]
    WrongKey { signed_by: KeyId, expected: KeyId },
    #[error("{INDEX_FILE}: bad signature (key {key})")]
    BadSignature { key: KeyId },
    #[error("{INDEX_FILE} is not valid: {0}")]
    Json(String),
    #[error("{INDEX_FILE} format {0} is not one this engine reads ({INDEX_FORMAT})")]
    Format(u32),
    #[error("{file}: {what} mismatch (index {want}, download {got})")]
    Download {
        file: String,
        what: &'static str,
        want: String,
        got: String,
    },
}

impl Index {
    /// The bytes written to `index.json` (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain strings and numbers always serialise.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The detached signature of `index_bytes`, for `index.json.sig`.
    pub fn sign_bytes(index_bytes: &[u8], key: &PrivateKey) -> SignatureBlock {
        sign::sign(key, Purpose::Index, index_bytes)
    }

    /// Verify `sig` over `index_bytes` with `key`, then parse. Never parses
    /// an index whose signature fails.
    pub fn from_signed(
        index_bytes: &[u8],
        sig: &[u8],
        key: &PublicKey,
    ) -> Result<Self, IndexError> {
        if sig.is_empty() {
            return Err(IndexError::Unsigned);
        }
        let block = SignatureBlock::from_bytes(sig).ok_or(IndexError::SignatureBlock(sig.len()))?;
        sign::verify(key, Purpose::Index, index_bytes, &block).map_err(|e| match e {
            VerifyError::WrongKey {
                signed_by,
                expected,
            } => IndexError::WrongKey {
                signed_by,
                expected,
            },
            VerifyError::BadSignature { key } => IndexError::BadSignature { key },
        })?;
        let index: Index =
            serde_json::from_slice(index_bytes).map_err(|e| IndexError::Json(e.to_string()))?;
        if index.format != INDEX_FORMAT {
            return Err(IndexError::Format(index.format));
        }
        Ok(index)
    }

    /// The entry for an engine implementing `offered`: the one listing
    /// exactly those versions; else, of the entries for engine ranges this
    /// engine covers (it implements every interface they list — a newer
    /// engine loads whatever an older one does), the one listing the most;
    /// else the first whose every variant the engine serves.
    pub fn entry_for(&self, offered: &[String]) -> Option<&IndexEntry> {
        let mut want: Vec<&String> = offered.iter().collect();
        want.sort();
        self.entries
            .iter()
            .find(|e| {
                let mut have: Vec<&String> = e.interfaces.iter().collect();
                have.sort();
                have == want
            })
            .or_else(|| {
                self.entries
                    .iter()
                    .filter(|e| {
                        !e.interfaces.is_empty() && e.interfaces.iter().all(|i| offers(offered, i))
                    })
                    .max_by_key(|e| e.interfaces.len())
            })
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.variants.iter().all(|v| offers(offered, &v.interface)))
            })
    }

    /// Whether the appliance `appliance_id` is in this index's rollout.
    pub fn selected(&self, appliance_id: &str) -> bool {
        match self.rollout {
            None => true,
            Some(r) => rollout_selected(appliance_id, self.bundle_version, r.percent),
        }
    }
}

impl IndexEntry {
    /// Check a downloaded bundle file against the size and SHA-256 listed.
    pub fn check_download(&self, bytes: &[u8]) -> Result<(), IndexError> {
        if bytes.len() as u64 != self.size {
            return Err(IndexError::Download {
                file: self.file.clone(),
                what: "size",
                want: self.size.to_string(),
                got: bytes.len().to_string(),
            });
        }
        let got = sha256_hex(bytes);
        if got != self.sha256 {
            return Err(IndexError::Download {
                file: self.file.clone(),
                what: "SHA-256",
                want: self.sha256.clone(),
                got,
            });
        }
        Ok(())
    }
}

/// Whether `appliance_id` takes bundle `bundle_version` in a rollout to
/// `percent` % of the fleet.
///
/// Stable: the same appliance gets the same answer for a given version, and
/// raising `percent` only adds appliances. The version is part of the hash, so
/// the first wave differs from one bundle to the next. `percent >= 100`
/// selects everyone, `0` no one.
pub fn rollout_selected(appliance_id: &str, bundle_version: u64, percent: u8) -> bool {
    if percent >= 100 {
        return true;
    }
    let mut h = Sha256::new();
    h.update(b"sandgate rollout v1\0");
    h.update(bundle_version.to_le_bytes());
    h.update(appliance_id.as_bytes());
    let digest = h.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // Map the hash uniformly onto 0..100.
    let bucket = ((u128::from(u64::from_be_bytes(head)) * 100) >> 64) as u8;
    bucket < percent
}

/// Whether `candidate` may replace the installed bundle version `current`:
/// strictly newer only, so replays and downgrades are refused. An appliance
/// with nothing installed passes `0`.
pub fn is_upgrade(current: u64, candidate: u64) -> bool {
    candidate > current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        Index {
            format: INDEX_FORMAT,
            bundle_version: 7,
            created_unix: 1,
            published_unix: 2,
            key_id: String::new(),
            rollout: Some(Rollout { percent: 10 }),
            entries: vec![IndexEntry {
                interfaces: vec!["1.0.0".into()],
                engines: vec!["sandgate 0.1.0".into()],
                file: "bundle-7.sgb".into(),
                size: 3,
                sha256: sha256_hex(b"abc"),
                variants: vec![IndexVariant {
                    module: "ips-rules".into(),
                    interface: "1.0.0".into(),
                    sha256: String::new(),
                }],
            }],
        }
    }

    #[test]
    fn a_signed_index_verifies_and_tampering_is_refused_by_kind() {
        let key = PrivateKey::from_bytes(&[3; 32]);
        let other = PrivateKey::from_bytes(&[4; 32]);
        let bytes = index().to_bytes();
        let sig = Index::sign_bytes(&bytes, &key).to_bytes();
        let vk = key.verifying_key();
        assert_eq!(Index::from_signed(&bytes, &sig, &vk), Ok(index()));
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(matches!(
            Index::from_signed(&flipped, &sig, &vk),
            Err(IndexError::BadSignature { .. })
        ));
        assert_eq!(
            Index::from_signed(&bytes, &[], &vk),
            Err(IndexError::Unsigned)
        );
        assert!(matches!(
            Index::from_signed(&bytes, &sig, &other.verifying_key()),
            Err(IndexError::WrongKey { .. })
        ));
        assert!(matches!(
            Index::from_signed(&bytes, &sig[..10], &vk),
            Err(IndexError::SignatureBlock(10))
        ));
    }

    #[test]
    fn the_entry_and_download_check_follow_the_engine() {
        let i = index();
        let e = i.entry_for(&["1.0.0".into()]).expect("exact range");
        assert_eq!(e.check_download(b"abc"), Ok(()));
        assert!(e.check_download(b"abd").is_err());
        assert!(e.check_download(b"abcd").is_err());
        assert!(
            i.entry_for(&["1.0.0".into(), "1.1.0".into()]).is_some(),
            "newer minor serves"
        );
        assert!(i.entry_for(&["2.0.0".into()]).is_none());
    }

    #[test]
    fn a_newer_engine_takes_the_richest_range_it_covers() {
        let mut i = index();
        let mut newer = i.entries[0].clone();
        newer.interfaces = vec!["1.0.0".into(), "1.1.0".into()];
        newer.file = "bundle-1.1.sgb".into();
        // A module only a 2.0 engine loads makes the variant rule useless here.
        let mut far = i.entries[0].clone();
        far.interfaces = vec!["2.0.0".into()];
        far.file = "bundle-2.sgb".into();
        i.entries.push(newer);
        i.entries.push(far);
        for v in &mut i.entries[0].variants {
            v.interface = "2.0.0".into();
        }
        let offered: Vec<String> = vec!["1.0.0".into(), "1.1.0".into(), "1.2.0".into()];
        let e = i.entry_for(&offered).expect("an entry this engine covers");
        assert_eq!(e.file, "bundle-1.1.sgb");
        let e = i
            .entry_for(&["1.0.0".into(), "1.3.0".into()])
            .expect("covered");
        assert_eq!(e.file, "bundle-1.1.sgb", "1.3.0 implements 1.1.0");
    }

    #[test]
    fn rollout_is_stable_monotonic_and_roughly_proportional() {
        let ids: Vec<String> = (0..2000).map(|i| format!("appliance-{i}")).collect();
        for p in [0u8, 10, 50, 100] {
            let n = ids.iter().filter(|id| rollout_selected(id, 42, p)).count();
            let want = ids.len() * usize::from(p) / 100;
            assert!(
                n.abs_diff(want) <= ids.len() / 25,
                "{p}%: {n} of {}",
                ids.len()
            );
        }
        for id in &ids {
            let mut was = false;
            for p in 0..=100u8 {
                let now = rollout_selected(id, 42, p);
                assert!(!was || now, "{id} left the rollout at {p}%");
                assert_eq!(now, rollout_selected(id, 42, p), "stable");
                was = now;
            }
        }
        let differ = ids
            .iter()
            .filter(|id| rollout_selected(id, 1, 10) != rollout_selected(id, 2, 10))
            .count();
        assert!(differ > 0, "the first wave changes with the version");
    }

    #[test]
    fn only_a_strictly_newer_version_is_an_upgrade() {
        assert!(is_upgrade(0, 1));
        assert!(is_upgrade(5, 6));
        assert!(!is_upgrade(6, 6), "a replay is not an upgrade");
        assert!(!is_upgrade(6, 5), "a downgrade is not an upgrade");
    }
}
