//! The appliance side of safe updates (`sandgate run`, `sandgate status`).
//!
//! | module | what lives there |
//! | --- | --- |
//! | [`client`] | polls the signed index, downloads this engine's bundle, verifies signature, size, hash and anti-rollback |
//! | [`activate`] | per-module pipeline: load check → compile or cached artifact → warm-up → self-test on the bundle's vectors → optional shadow run → swap → persist |
//! | [`plane`] | the data-plane thread: a [`plane::PacketSource`] through the [`crate::inspect::Inspector`], module swaps applied between batches |
//! | [`store`] | the state directory: last good set, atomic commits |
//! | [`events`] | events: JSON log lines, Prometheus counters, telemetry spool |
//! | [`status`] | `status.json` and its rendering for `sandgate status` |
//! | [`daemon`] | wiring: startup from the store, the tokio side, the data-plane thread |
//!
//! The update side never waits for the data plane and the data plane never
//! waits for the network: update traffic is the host's own (management)
//! traffic and is never inspected, so a data plane dropping everything
//! fail-closed cannot keep a fix from arriving.

pub mod activate;
pub mod client;
pub mod daemon;
pub mod events;
pub mod plane;
pub mod status;
pub mod store;

use std::path::Path;

use thiserror::Error;

/// Why an update step failed. Always names the file, URL or module.
#[derive(Debug, Error)]
pub enum UpdateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("state directory: {0}")]
    Store(String),
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error(transparent)]
    Index(#[from] sandgate_patterns::index::IndexError),
    #[error(transparent)]
    Bundle(#[from] sandgate_patterns::bundle::BundleError),
    #[error("{0}")]
    Refused(String),
    #[error("the data plane has stopped")]
    PlaneGone,
}

impl UpdateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        UpdateError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
