//! The Sandgate pattern toolchain: rule text in, signed-off wasm components out.
//!
//! Data flows one way through these modules:
//!
//! - [`rules`]: the Suricata rule grammar — files to [`rules::ParsedRule`]s,
//!   header variables resolved from a suricata.yaml-shaped vars file.
//! - [`av`]: ClamAV signature databases (`.hdb/.hsb/.ndb/.ldb/.ign2`)
//!   lowered into the AV engine's [`sandgate_matcher::av::AvDb`]; skipped
//!   signatures name database, line, signature and construct.
//! - [`compile`]: keyword semantics — parsed rules lowered into the matcher IR
//!   ([`sandgate_matcher::RuleSet`]); unsupported rules become
//!   [`compile::Skipped`] entries naming file, line, sid and keyword. Rules
//!   are lowered on every core, each distinct `pcre` compiled once; the
//!   output is the same for any thread count.
//! - [`emit`]: the IR embedded as data into the prebuilt matcher guest and
//!   wrapped as a `sandgate:pattern@1.0.0` component (no rustc involved).
//! - [`bundle`]: the bundle file that carries module variants, their test
//!   vectors ([`vectors`]) and an Ed25519 signature ([`sign`]) to the engine.
//! - [`field`]: the field list — engine releases in the field and the
//!   interface versions each implements.
//! - [`index`]: the signed publish index, staged rollout and anti-rollback
//!   checks the appliance side uses.
//! - [`pipeline`]: `sandgate-patc build`, tying the above together.
//!
//! Start reading at [`pipeline::build`]; the appliance side starts at
//! [`index::Index::from_signed`] and [`bundle::Bundle::verify`].

pub mod av;
pub mod bundle;
pub mod compile;
pub mod emit;
pub mod field;
pub mod index;
pub mod pipeline;
pub mod rules;
pub mod sign;
pub mod vectors;
