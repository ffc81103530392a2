//! The update client: fetch the signed index, pick this engine's entry,
//! honour the staged rollout, download the bundle and refuse anything that
//! is not authentic, complete and newer than what runs.
//!
//! Order of checks: index signature (pinned vendor key) → anti-rollback on
//! the index version → rollout → entry for this engine's interfaces →
//! download size and SHA-256 → bundle structure and hashes → bundle
//! signature → the manifest's version equals the signed index's.

use std::time::Duration;

use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::index::{is_upgrade, Index, IndexEntry, INDEX_FILE, INDEX_SIG_FILE};
use sandgate_patterns::sign::PublicKey;

use super::UpdateError;

/// Largest `index.json` the client reads.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;

/// What one poll found.
pub enum Poll {
    /// The index names no newer bundle.
    UpToDate,
    /// The signed index offers a version older than the active one.
    Downgrade { offered: u64, active: u64 },
    /// Newer, but this appliance is not in the staged rollout yet.
    NotSelected { version: u64, percent: u8 },
    /// Newer, but no entry serves this engine's interface versions.
    NoEntry { version: u64, ranges: Vec<String> },
    /// A verified bundle to activate.
    Bundle {
        bundle: Box<Bundle>,
        entry: IndexEntry,
    },
}

/// Polls one update server with the pinned vendor key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: PublicKey,
    offered: Vec<String>,
    appliance: String,
}

/// The HTTP client the daemon uses for updates and telemetry.
pub fn http_client() -> Result<reqwest::Client, UpdateError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| UpdateError::Http {
            url: "<client>".into(),
            detail: e.to_string(),
        })
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        key: PublicKey,
        offered: Vec<String>,
        appliance: &str,
    ) -> Self {
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            offered,
            appliance: appliance.to_string(),
        }
    }

    /// `base/name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// GET `base/name`, refusing bodies over `limit` bytes (a server cannot
    /// make the appliance buffer more than the signed index announced).
    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, UpdateError> {
        let url = self.url(name);
        let err = |detail: String| UpdateError::Http {
            url: url.clone(),
            detail,
        };
        let mut resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| err(format!("download broke off: {e}")))?
        {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(err(format!("refused: larger than {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// One poll against the active bundle version `active`.
    pub async fn poll(&self, active: u64) -> Result<Poll, UpdateError> {
        let index_bytes = self.get(INDEX_FILE, MAX_INDEX_BYTES).await?;
        let sig = self.get(INDEX_SIG_FILE, 1024).await?;
        let index = Index::from_signed(&index_bytes, &sig, &self.key)?;
        if index.bundle_version < active {
            return Ok(Poll::Downgrade {
                offered: index.bundle_version,
                active,
            });
        }
        if !is_upgrade(active, index.bundle_version) {
            return Ok(Poll::UpToDate);
        }
        if !index.selected(&self.appliance) {
            return Ok(Poll::NotSelected {
                version: index.bundle_version,
                percent: index.rollout.map_or(100, |r| r.percent),
            });
        }
        let Some(entry) = index.entry_for(&self.offered).cloned() else {
            return Ok(Poll::NoEntry {
                version: index.bundle_version,
                ranges: index
                    .entries
                    .iter()
                    .map(|e| format!("[{}]", e.interfaces.join(", ")))
                    .collect(),
            });
        };
        let raw = self.get(&entry.file, entry.size).await?;
        entry.check_download(&raw)?;
        let bundle = Bundle::from_bytes(&raw, &self.url(&entry.file))?;
        bundle.verify(&self.key)?;
        if bundle.manifest.version != index.bundle_version {
            return Err(UpdateError::Refused(format!(
                "{}: bundle version {} differs from the signed index's {}",
                self.url(&entry.file),
                bundle.manifest.version,
                index.bundle_version
            )));
        }
        Ok(Poll::Bundle {
            bundle: Box::new(bundle),
            entry,
        })
    }
}
