//! The Sandgate pattern toolchain: rule text in, signed-off wasm components out.
//!
//! Data flows one way through these modules:
//!
//! - [`rules`]: the Suricata rule grammar — files to [`rules::ParsedRule`]s,
//!   header variables resolved from a suricata.yaml-shaped vars file.
//! - [`compile`]: keyword semantics — parsed rules lowered into the matcher IR
//!   ([`sandgate_matcher::RuleSet`]); unsupported rules become
//!   [`compile::Skipped`] entries naming file, line, sid and keyword.
//! - [`emit`]: the IR embedded as data into the prebuilt matcher guest and
//!   wrapped as a `sandgate:pattern@1.0.0` component (no rustc involved).
//! - [`bundle`]: the bundle file that carries modules to the engine.
//! - [`pipeline`]: `sandgate-patc build`, tying the above together.
//!
//! Start reading at [`pipeline::build`].

pub mod bundle;
pub mod compile;
pub mod emit;
pub mod pipeline;
pub mod rules;
