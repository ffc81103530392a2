//! suricata-verify test cases run through Sandgate: read a test directory,
//! decide whether Sandgate can run it faithfully, replay it, and compare the
//! alerts with what the test expects.
//!
//! A test directory (upstream layout) holds `test.yaml` (requirements,
//! command-line arguments, checks), `test.rules`, one capture and sometimes a
//! `suricata.yaml`. [`VerifyTest::load`] reads it into typed form;
//! [`classify`] lists everything that stops a faithful run — a requirement,
//! argument or setting Sandgate cannot honour, a rule that does not compile,
//! a check on an alert field Sandgate does not write — and [`run`] replays a
//! supported test and evaluates its alert checks the way suricata-verify's
//! `filter` check does: count the alerts whose fields equal every `match`
//! entry. Non-alert checks (flow, stats, protocol records) are out of scope.
//!
//! Start at [`verify_test`], which does all three and never fails: every
//! problem ends up in the [`TestReport`]'s [`Status`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sandgate_host::eve::{AlertRecord, EveWriter};
use sandgate_host::flow::FlowConfig;
use sandgate_host::replay::ReplayOptions;
use sandgate_patterns::compile::{compile_rules, SkipReason};
use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::{RuleSource, VarGroup, Vars};
use sandgate_runtime::Engine;
use serde_yaml::Value as Yaml;

/// The Suricata version whose behaviour the expectations are compared with:
/// the suite's commit (see `COMMIT` beside the tests) targets Suricata master,
/// 9.0.0-dev, so `requires: min-version: 9` is met and `lt-version: 8` is not.
pub const SURICATA_VERSION: Version = Version {
    major: 9,
    minor: 0,
    patch: 0,
};

/// Build features (`requires: features:`) Sandgate provides. None of
/// Suricata's (`HAVE_JA3`, `ASAN`, `LIBNET1.1`, …) applies.
pub const FEATURES: &[&str] = &[];

/// `requires: script:` lines whose answer is known without Suricata's source
/// tree, with why Sandgate meets them.
const KNOWN_SCRIPTS: &[(&str, &str)] = &[(
    "grep IPV4_OPT_ESEC src/decode-ipv4.h > /dev/null",
    "asks whether the decoder knows the ESEC IP option; the rule compile decides for us",
)];

/// Alert fields Sandgate's EVE output writes and whose values compare with
/// Suricata's (`flow_id` and `timestamp` are written but differ by design).
const EVE_FIELDS: &[&str] = &[
    "event_type",
    "pcap_cnt",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "proto",
    "icmp_type",
    "icmp_code",
    "direction",
    "alert.action",
    "alert.gid",
    "alert.signature_id",
    "alert.rev",
    "alert.signature",
    "alert.category",
    "alert.severity",
];

/// Why a test directory could not be read; every variant names the test.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{test}: cannot read {file}: {source}")]
    Io {
        test: String,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{test}: {file}: not valid YAML: {source}")]
    Yaml {
        test: String,
        file: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{test}: {file}: `{field}`: {why}")]
    Field {
        test: String,
        file: String,
        field: String,
        why: String,
    },
    #[error("{test}: no test.rules")]
    NoRules { test: String },
    #[error("{test}: {count} captures in the directory and none named in test.yaml")]
    AmbiguousCapture { test: String, count: usize },
    #[error("{test}: build: {why}")]
    Build { test: String, why: String },
    #[error("{test}: load: {why}")]
    Load { test: String, why: String },
    #[error("{test}: replay of {pcap}: {why}")]
    Replay {
        test: String,
        pcap: String,
        why: String,
    },
}

/// A Suricata version as `requires:` writes it (`7`, `6.0`, `7.0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parses `MAJOR[.MINOR[.PATCH]]`, ignoring a `-dev`-style suffix.
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.trim().split('-').next().unwrap_or("");
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next().transpose().ok()?.unwrap_or(0);
        let patch = parts.next().transpose().ok()?.unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A `requires:` block, of the test or of one check.
#[derive(Debug, Clone, Default)]
pub struct Requires {
    pub min_version: Option<Version>,
    pub lt_version: Option<Version>,
    pub gt_version: Option<Version>,
    pub features: Vec<String>,
    pub scripts: Vec<String>,
    /// Keys this runner does not know (`env`, `files`, `pcap`, …): unmet.
    pub other: Vec<String>,
}

impl Requires {
    fn parse(node: Option<&Yaml>, at: &Where<'_>, field: &str) -> Result<Requires, VerifyError> {
        let mut req = Requires::default();
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return Ok(req);
        };
        let map = node
            .as_mapping()
            .ok_or_else(|| at.field(field, "not a mapping"))?;
        for (key, value) in map {
            let key = scalar(key).unwrap_or_default();
            let name = format!("{field}.{key}");
            let version = || {
                scalar(value)
                    .as_deref()
                    .and_then(Version::parse)
                    .ok_or_else(|| at.field(&name, "not a version"))
            };
            match key.as_str() {
                "min-version" => req.min_version = Some(version()?),
                "lt-version" => req.lt_version = Some(version()?),
                "gt-version" => req.gt_version = Some(version()?),
                "features" => req.features = strings(value, at, &name)?,
                "script" => req.scripts = strings(value, at, &name)?,
                _ => req.other.push(key),
            }
        }
        Ok(req)
    }

    /// What Sandgate (as [`SURICATA_VERSION`] with [`FEATURES`]) does not meet.
    pub fn unmet(&self) -> Vec<String> {
        let v = SURICATA_VERSION;
        let mut out = Vec::new();
        if let Some(min) = self.min_version.filter(|min| v < *min) {
            out.push(format!("min-version {min}"));
        }
        if let Some(lt) = self.lt_version.filter(|lt| v >= *lt) {
            out.push(format!("lt-version {lt}"));
        }
        if let Some(gt) = self.gt_version.filter(|gt| v <= *gt) {
            out.push(format!("gt-version {gt}"));
        }
        for f in &self.features {
            if !FEATURES.contains(&f.as_str()) {
                out.push(format!("feature {f}"));
            }
        }
        for s in &self.scripts {
            if !KNOWN_SCRIPTS.iter().any(|(known, _)| known == s) {
                out.push("script".into());
            }
        }
        out.extend(self.other.iter().map(|k| format!("`{k}`")));
        out
    }
}

/// One entry of `checks:`.
#[derive(Debug, Clone)]
pub enum Check {
    /// A `filter` on alert events.
    Alert(AlertCheck),
    /// Anything else (flow, stats, protocol records, shell, file compare).
    Other { index: usize, kind: String },
}

/// "`count` alerts have fields equal to every `matches` entry."
#[derive(Debug, Clone)]
pub struct AlertCheck {
    /// Position in `checks:`, from 0.
    pub index: usize,
    pub count: u64,
    pub requires: Requires,
    /// Dotted field path (`alert.signature_id`, `pcap_cnt`) and the value;
    /// `event_type: alert` is left out.
    pub matches: Vec<(String, Yaml)>,
}

impl AlertCheck {
    /// The expected signature id, when the check names one.
    pub fn sid(&self) -> Option<u64> {
        self.matches
            .iter()
            .find(|(k, _)| k == "alert.signature_id")
            .and_then(|(_, v)| v.as_u64())
    }
}

/// Where the capture comes from.
#[derive(Debug, Clone)]
pub enum Capture {
    File(PathBuf),
    /// `pcap:` names a file that is not in this subset of the suite.
    Missing(String),
    /// `pcap: false`, or no capture at all.
    None,
}

/// The parts of a test's `suricata.yaml` that can change alerts.
#[derive(Debug, Clone, Default)]
pub struct SuricataConfig {
    /// `vars:` address and port groups, when present.
    pub vars: Option<Vars>,
    /// Every other leaf as `dotted.key = value`; `outputs`, `logging` and
    /// `vars` are left out.
    pub settings: Vec<(String, String)>,
}

/// One suricata-verify test directory.
#[derive(Debug, Clone)]
pub struct VerifyTest {
    /// Path below the suite's `tests/`, e.g. `threshold/threshold-rule-flow`.
    pub name: String,
    pub dir: PathBuf,
    pub requires: Requires,
    /// `args:` split into words.
    pub args: Vec<String>,
    /// `command:`, replacing the default invocation.
    pub command: Option<String>,
    /// `env:` variable names.
    pub env: Vec<String>,
    pub rules: PathBuf,
    pub capture: Capture,
    pub config: Option<SuricataConfig>,
    pub checks: Vec<Check>,
}

/// Names the test and file in errors.
struct Where<'a> {
    test: &'a str,
    file: &'a str,
}

impl Where<'_> {
    fn field(&self, field: &str, why: &str) -> VerifyError {
        VerifyError::Field {
            test: self.test.to_owned(),
            file: self.file.to_owned(),
            field: field.to_owned(),
            why: why.to_owned(),
        }
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string or a list of strings.
fn strings(v: &Yaml, at: &Where<'_>, field: &str) -> Result<Vec<String>, VerifyError> {
    match v {
        Yaml::Sequence(items) => items
            .iter()
            .map(|i| scalar(i).ok_or_else(|| at.field(field, "list item is not a string")))
            .collect(),
        other => scalar(other)
            .map(|s| vec![s])
            .ok_or_else(|| at.field(field, "not a string or list")),
    }
}

fn read_yaml(test: &str, path: &Path) -> Result<Yaml, VerifyError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| VerifyError::Io {
        test: test.to_owned(),
        file: file.clone(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| VerifyError::Yaml {
        test: test.to_owned(),
        file,
        source,
    })
}

impl VerifyTest {
    /// Reads the test in `dir`; `name` is how reports call it.
    pub fn load(dir: &Path, name: &str) -> Result<VerifyTest, VerifyError> {
        let at = Where {
            test: name,
            file: "test.yaml",
        };
        let doc = read_yaml(name, &dir.join("test.yaml"))?;
        let top = doc
            .as_mapping()
            .ok_or_else(|| at.field("(top)", "not a mapping"))?;
        let requires = Requires::parse(top.get("requires"), &at, "requires")?;
        let mut args = Vec::new();
        if let Some(a) = top.get("args").filter(|a| !a.is_null()) {
            for word in strings(a, &at, "args")? {
                args.extend(word.split_whitespace().map(str::to_owned));
            }
        }
        let command = match top.get("command") {
            Some(c) => Some(scalar(c).ok_or_else(|| at.field("command", "not a string"))?),
            None => None,
        };
        let env = match top.get("env") {
            Some(Yaml::Mapping(m)) => m.keys().filter_map(scalar).collect(),
            Some(_) => return Err(at.field("env", "not a mapping")),
            None => Vec::new(),
        };
        let rules = dir.join("test.rules");
        if !rules.is_file() {
            return Err(VerifyError::NoRules {
                test: name.to_owned(),
            });
        }
        let capture = match top.get("pcap") {
            Some(Yaml::Bool(false)) => Capture::None,
            Some(p) => {
                let rel = scalar(p).ok_or_else(|| at.field("pcap", "not a path"))?;
                let path = dir.join(&rel);
                if path.is_file() {
                    Capture::File(path)
                } else {
                    Capture::Missing(rel)
                }
            }
            None => find_capture(dir, name)?,
        };
        let config_path = dir.join("suricata.yaml");
        let config = if config_path.is_file() {
            Some(SuricataConfig::load(name, &config_path)?)
        } else {
            None
        };
        let mut checks = Vec::new();
        if let Some(list) = top.get("checks").filter(|c| !c.is_null()) {
            let list = list
                .as_sequence()
                .ok_or_else(|| at.field("checks", "not a list"))?;
            for (index, item) in list.iter().enumerate() {
                checks.push(parse_check(index, item, &at)?);
            }
        }
        Ok(VerifyTest {
            name: name.to_owned(),
            dir: dir.to_path_buf(),
            requires,
            args,
            command,
            env,
            rules,
            capture,
            config,
            checks,
        })
    }
}

fn find_capture(dir: &Path, test: &str) -> Result<Capture, VerifyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| VerifyError::Io {
        test: test.to_owned(),
        file: dir.display().to_string(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            p.is_file() && matches!(ext, "pcap" | "pcapng")
        })
        .collect();
    match found.len() {
        0 => Ok(Capture::None),
        1 => Ok(Capture::File(found.remove(0))),
        count => Err(VerifyError::AmbiguousCapture {
            test: test.to_owned(),
            count,
        }),
    }
}

fn parse_check(index: usize, item: &Yaml, at: &Where<'_>) -> Result<Check, VerifyError> {
    let field = format!("checks[{index}]");
    let map = item
        .as_mapping()
        .ok_or_else(|| at.field(&field, "not a mapping"))?;
    let Some(filter) = map.get("filter") else {
        let kind = map.keys().filter_map(scalar).next().unwrap_or_default();
        return Ok(Check::Other { index, kind });
    };
    let filter = filter
        .as_mapping()
        .ok_or_else(|| at.field(&format!("{field}.filter"), "not a mapping"))?;
    let matches = match filter.get("match") {
        Some(Yaml::Mapping(m)) => m,
        Some(Yaml::Null) | None => {
            return Ok(Check::Other {
                index,
                kind: "filter".into(),
            })
        }
        Some(_) => return Err(at.field(&format!("{field}.filter.match"), "not a mapping")),
    };
    let mut event_type = None;
    let mut pairs = Vec::new();
    for (k, v) in matches {
        let key = scalar(k).ok_or_else(|| at.field(&field, "a match key is not a string"))?;
        if key == "event_type" {
            event_type = scalar(v);
        } else {
            pairs.push((key, v.clone()));
        }
    }
    let names_alert = pairs.iter().any(|(k, _)| k.starts_with("alert."));
    let is_alert = match event_type.as_deref() {
        Some(t) => t == "alert",
        None => names_alert,
    };
    if !is_alert {
        return Ok(Check::Other {
            index,
            kind: event_type.unwrap_or_else(|| "any event".into()),
        });
    }
    let count = filter
        .get("count")
        .and_then(Yaml::as_u64)
        .ok_or_else(|| at.field(&format!("{field}.filter.count"), "missing or not a count"))?;
    let requires = Requires::parse(
        filter.get("requires"),
        at,
        &format!("{field}.filter.requires"),
    )?;
    Ok(Check::Alert(AlertCheck {
        index,
        count,
        requires,
        matches: pairs,
    }))
}

impl SuricataConfig {
    fn load(test: &str, path: &Path) -> Result<SuricataConfig, VerifyError> {
        let doc = read_yaml(test, path)?;
        let mut config = SuricataConfig::default();
        let Some(top) = doc.as_mapping() else {
            return Ok(config);
        };
        if top.get("vars").is_some_and(|v| !v.is_null()) {
            let vars = Vars::from_yaml_file(path).map_err(|e| VerifyError::Field {
                test: test.to_owned(),
                file: "suricata.yaml".into(),
                field: "vars".into(),
                why: e.to_string(),
            })?;
            config.vars = Some(vars);
        }
        for (k, v) in top {
            let key = scalar(k).unwrap_or_default();
            if !matches!(key.as_str(), "outputs" | "logging" | "vars") {
                flatten(&key, v, &mut config.settings);
            }
        }
        Ok(config)
    }
}

fn flatten(prefix: &str, v: &Yaml, out: &mut Vec<(String, String)>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                let key = format!("{prefix}.{}", scalar(k).unwrap_or_default());
                flatten(&key, v, out);
            }
        }
        Yaml::Sequence(items) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            out.push((prefix.to_owned(), words.join(",")));
        }
        other => out.push((prefix.to_owned(), scalar(other).unwrap_or_default())),
    }
}

/// Why Sandgate cannot run a test faithfully.
#[derive(Debug, Clone)]
pub enum Unsupported {
    /// A `requires:` entry not met.
    Requirement(String),
    /// A command-line argument with no Sandgate equivalent.
    Argument(String),
    /// A `--set` or `suricata.yaml` setting Sandgate cannot honour.
    Setting {
        key: String,
        value: String,
    },
    /// `command:` replaces the invocation.
    Command,
    Env(String),
    /// `pcap:` names a capture from a test outside this subset.
    CaptureMissing(String),
    NoCapture,
    /// Nothing to compare: no alert check applies to this version.
    NoAlertChecks,
    /// An alert check needs a field Sandgate does not write, and dropping
    /// the field could change what the check counts.
    CheckField {
        check: usize,
        field: String,
    },
    NoRules,
    /// A rule did not compile.
    Rule {
        line: usize,
        sid: Option<u32>,
        reason: SkipReason,
    },
}

impl Unsupported {
    /// A short label for ranking reasons across tests.
    pub fn label(&self) -> String {
        match self {
            Unsupported::Requirement(r) => format!("requires {r}"),
            Unsupported::Argument(a) => format!("argument `{a}`"),
            Unsupported::Setting { key, .. } => format!("setting `{key}`"),
            Unsupported::Command => "custom command line".into(),
            Unsupported::Env(e) => format!("environment `{e}`"),
            Unsupported::CaptureMissing(_) => "capture not in the subset".into(),
            Unsupported::NoCapture => "no capture".into(),
            Unsupported::NoAlertChecks => "no alert checks".into(),
            Unsupported::CheckField { field, .. } => format!("check on field `{field}`"),
            Unsupported::NoRules => "no rules".into(),
            Unsupported::Rule {
                reason: SkipReason::Parse(why),
                ..
            } => {
                let short: String = why.chars().take(60).collect();
                format!("malformed rule ({short})")
            }
            Unsupported::Rule { reason, .. } => reason.label(),
        }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Setting { key, value } => write!(f, "setting `{key}={value}`"),
            Unsupported::CaptureMissing(p) => write!(f, "capture {p} not in the subset"),
            Unsupported::CheckField { check, field } => {
                write!(
                    f,
                    "checks[{check}] matches `{field}`, not written by Sandgate"
                )
            }
            Unsupported::Rule { line, sid, reason } => match sid {
                Some(sid) => write!(f, "line {line} (sid {sid}): {reason}"),
                None => write!(f, "line {line}: {reason}"),
            },
            other => f.write_str(&other.label()),
        }
    }
}

/// How Sandgate runs a test: the replay settings the arguments and
/// `suricata.yaml` translate to.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// `stream.midstream`.
    pub midstream: bool,
    /// Settings read and deliberately ignored, for the report.
    pub notes: Vec<String>,
}

impl RunSettings {
    /// Applies one setting, or says why it cannot be honoured.
    fn apply(&mut self, key: &str, value: &str) -> Result<(), Unsupported> {
        let truthy = matches!(value, "true" | "yes" | "1" | "on");
        let unsupported = || Unsupported::Setting {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        match key {
            "stream.midstream" => self.midstream = truthy,
            // Sandgate never validates checksums, so every mode inspects what
            // Suricata with `-k none` inspects.
            "stream.checksum-validation" | "pcap-file.checksum-checks" => {
                self.notes
                    .push(format!("{key}={value} ignored (no checksum validation)"));
            }
            // 0 means "the default", 15; Sandgate has no per-packet cap, which
            // only differs when more than the cap of rules fire on one packet.
            "packet-alert-max" if matches!(value, "0" | "15") => {
                self.notes
                    .push(format!("{key}={value}: default cap, none in Sandgate"));
            }
            // Sandgate's reassembly depth is Suricata's default, 1 MiB; other
            // depths wait for the replay options to carry one.
            "stream.reassembly.depth" if byte_size(value) == Some(1 << 20) => {
                self.notes.push(format!("{key}={value}: the default"));
            }
            // Algorithm and table-size choices change speed, not verdicts.
            "mpm-algo" | "spm-algo" | "flow.hash-size" => {
                self.notes
                    .push(format!("{key}={value} ignored (no effect on alerts)"));
            }
            k if k.starts_with("stats.") || k == "sensor-name" => {}
            _ => return Err(unsupported()),
        }
        Ok(())
    }

    fn replay_options(&self) -> ReplayOptions {
        ReplayOptions {
            flow: FlowConfig {
                midstream: self.midstream,
                ..FlowConfig::default()
            },
            ..ReplayOptions::default()
        }
    }
}

/// Suricata's sizes: `4096`, `64kb`, `1mb`, `1gb` (powers of 1024).
fn byte_size(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v.as_str(), ""),
    };
    let shift = match unit.trim() {
        "" | "b" => 0,
        "kb" | "k" => 10,
        "mb" | "m" => 20,
        "gb" | "g" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// An alert check as it will be evaluated.
#[derive(Debug, Clone)]
pub struct PlannedCheck {
    pub check: AlertCheck,
    /// Fields of the check dropped because Sandgate does not write them
    /// (evaluated only where dropping cannot merge two checks).
    pub dropped: Vec<String>,
}

/// What [`classify`] decided.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub settings: RunSettings,
    pub vars: Vars,
    pub checks: Vec<PlannedCheck>,
    /// Alert checks not applicable to [`SURICATA_VERSION`].
    pub checks_not_applicable: usize,
    pub other_checks: usize,
    /// Everything that stops a faithful run; empty means supported.
    pub unsupported: Vec<Unsupported>,
}

fn modelled(field: &str) -> bool {
    EVE_FIELDS.contains(&field) || field.starts_with("alert.metadata")
}

/// The field a match entry reads (`has-key: x` reads `x`).
fn field_of<'a>(key: &'a str, value: &'a Yaml) -> &'a str {
    match (key, value) {
        ("has-key" | "not-has-key", Yaml::String(f)) => f,
        _ => key,
    }
}

/// Decides whether `test` can run faithfully and how; reads and compiles the
/// rules to learn which do not compile.
pub fn classify(test: &VerifyTest) -> Result<Plan, VerifyError> {
    let mut plan = Plan {
        vars: Vars::suricata_defaults(),
        ..Plan::default()
    };
    let out = &mut plan.unsupported;
    out.extend(
        test.requires
            .unmet()
            .into_iter()
            .map(Unsupported::Requirement),
    );
    match &test.command {
        Some(cmd) if stdin_replay(cmd, &test.capture) => {
            plan.settings
                .notes
                .push("command pipes the capture into -r /dev/stdin".into());
        }
        Some(_) => out.push(Unsupported::Command),
        None => {}
    }
    out.extend(test.env.iter().cloned().map(Unsupported::Env));
    let mut words = test.args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-k" => {
                let mode = words.next().map(String::as_str).unwrap_or("");
                plan.settings
                    .notes
                    .push(format!("-k {mode}: no checksum validation"));
            }
            "--set" => {
                let kv = words.next().map(String::as_str).unwrap_or("");
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                if let Err(u) = plan.settings.apply(k, v) {
                    out.push(u);
                }
            }
            other => out.push(Unsupported::Argument(other.to_owned())),
        }
    }
    if let Some(config) = &test.config {
        for (k, v) in &config.settings {
            if let Err(u) = plan.settings.apply(k, v) {
                out.push(u);
            }
        }
        if let Some(vars) = &config.vars {
            for group in [VarGroup::Address, VarGroup::Port] {
                for (name, value) in vars.iter(group) {
                    plan.vars.set(group, name, value);
                }
            }
        }
    }
    match &test.capture {
        Capture::File(_) => {}
        Capture::Missing(p) => out.push(Unsupported::CaptureMissing(p.clone())),
        Capture::None => out.push(Unsupported::NoCapture),
    }
    plan_checks(test, &mut plan);
    let text = std::fs::read_to_string(&test.rules).map_err(|source| VerifyError::Io {
        test: test.name.clone(),
        file: test.rules.display().to_string(),
        source,
    })?;
    let compiled = compile_rules(
        &[RuleSource {
            file: "test.rules",
            text: &text,
        }],
        &plan.vars,
        "verify",
        "1",
    );
    if compiled.set.rules.is_empty() && compiled.skipped.is_empty() {
        plan.unsupported.push(Unsupported::NoRules);
    }
    plan.unsupported
        .extend(compiled.skipped.into_iter().map(|s| Unsupported::Rule {
            line: s.line,
            sid: s.sid,
            reason: s.reason,
        }));
    Ok(plan)
}

/// True when `command` is the default invocation with the test's capture
/// piped in (`cat ${TEST_DIR}/X.pcap | suricata -r /dev/stdin -S test.rules …`),
/// which a replay of the capture reproduces.
fn stdin_replay(command: &str, capture: &Capture) -> bool {
    let Capture::File(pcap) = capture else {
        return false;
    };
    let Some(file) = pcap.file_name().and_then(|f| f.to_str()) else {
        return false;
    };
    let words: Vec<&str> = command.split_whitespace().filter(|w| *w != "\\").collect();
    let [cat, src, pipe, suricata, rest @ ..] = words.as_slice() else {
        return false;
    };
    if *cat != "cat"
        || *src != format!("${{TEST_DIR}}/{file}")
        || *pipe != "|"
        || !suricata.ends_with("/src/suricata")
    {
        return false;
    }
    let mut options = rest.iter();
    while let Some(option) = options.next() {
        let arg = options.next().copied().unwrap_or("");
        let default = match *option {
            "-c" => arg == "${SRCDIR}/suricata.yaml",
            "-r" => arg == "/dev/stdin",
            "-S" => arg == "${TEST_DIR}/test.rules",
            "-l" => arg == "${OUTPUT_DIR}",
            "--set" => {
                arg.starts_with("classification-file=") || arg.starts_with("reference-config-file=")
            }
            _ => false,
        };
        if !default {
            return false;
        }
    }
    true
}

fn plan_checks(test: &VerifyTest, plan: &mut Plan) {
    let mut applicable = Vec::new();
    for check in &test.checks {
        match check {
            Check::Other { .. } => plan.other_checks += 1,
            Check::Alert(c) if !c.requires.unmet().is_empty() => plan.checks_not_applicable += 1,
            Check::Alert(c) => applicable.push(c),
        }
    }
    if applicable.is_empty() {
        plan.unsupported.push(Unsupported::NoAlertChecks);
        return;
    }
    let kept = |c: &AlertCheck| {
        let mut m: Vec<(String, Yaml)> = c
            .matches
            .iter()
            .filter(|(k, v)| modelled(field_of(k, v)))
            .cloned()
            .collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        m
    };
    for c in &applicable {
        let dropped: Vec<String> = c
            .matches
            .iter()
            .map(|(k, v)| field_of(k, v))
            .filter(|f| !modelled(f))
            .map(str::to_owned)
            .collect();
        let mine = kept(c);
        // Dropping a field is safe when it cannot merge this check with
        // another one and the check asks for alerts (count 0 would become a
        // stronger claim than the test makes).
        let merges = applicable
            .iter()
            .any(|o| o.index != c.index && kept(o) == mine);
        if !dropped.is_empty() && (c.count == 0 || merges) {
            plan.unsupported
                .extend(dropped.iter().map(|field| Unsupported::CheckField {
                    check: c.index,
                    field: field.clone(),
                }));
            continue;
        }
        plan.checks.push(PlannedCheck {
            check: AlertCheck {
                matches: mine,
                ..(*c).clone()
            },
            dropped,
        });
    }
}

/// One evaluated alert check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub index: usize,
    /// `sid 3, pcap_cnt 4`.
    pub what: String,
    pub expected: u64,
    pub got: u64,
    pub dropped: Vec<String>,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.expected == self.got
    }
}

/// What [`run`] found.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub results: Vec<CheckResult>,
    /// Replay facts that explain failures (frames not decoded, faults).
    pub notes: Vec<String>,
}

/// Replays a classified test and evaluates its planned checks.
pub fn run(engine: &Engine, test: &VerifyTest, plan: &Plan) -> Result<RunOutcome, VerifyError> {
    let Capture::File(pcap) = &test.capture else {
        return Ok(RunOutcome::default());
    };
    let report = build(&BuildOptions {
        inputs: vec![test.rules.clone()],
        vars: plan.vars.clone(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })
    .map_err(|e| VerifyError::Build {
        test: test.name.clone(),
        why: e.to_string(),
    })?;
    let modules = crate::load_all(engine, &report.bundle).map_err(|e| VerifyError::Load {
        test: test.name.clone(),
        why: format!("{e:#}"),
    })?;
    let outcome =
        crate::run_replay(&modules, pcap, &plan.settings.replay_options()).map_err(|e| {
            VerifyError::Replay {
                test: test.name.clone(),
                pcap: pcap.display().to_string(),
                why: format!("{e:#}"),
            }
        })?;
    let events: Vec<serde_json::Value> = outcome
        .alerts
        .iter()
        .filter_map(|a| eve_json(a).ok())
        .collect();
    if events.len() != outcome.alerts.len() {
        return Err(VerifyError::Replay {
            test: test.name.clone(),
            pcap: pcap.display().to_string(),
            why: "an alert did not serialise to EVE JSON".into(),
        });
    }
    let results = plan
        .checks
        .iter()
        .map(|p| CheckResult {
            index: p.check.index,
            what: describe(&p.check),
            expected: p.check.count,
            got: events.iter().filter(|e| matches_all(&p.check, e)).count() as u64,
            dropped: p.dropped.clone(),
        })
        .collect();
    let s = &outcome.stats;
    let mut notes = Vec::new();
    if s.not_ip > 0 || s.decode_errors > 0 {
        notes.push(format!(
            "{} of {} frames not inspected ({} not IP, {} decode errors{}{})",
            s.not_ip + s.decode_errors,
            s.packets,
            s.not_ip,
            s.decode_errors,
            if s.decode_error_samples.is_empty() {
                ""
            } else {
                ": "
            },
            s.decode_error_samples.join("; ")
        ));
    }
    let faults: u64 = outcome
        .modules
        .iter()
        .flat_map(|m| m.faults.iter().map(|(_, n)| n))
        .sum();
    if faults > 0 {
        notes.push(format!("{faults} module fault(s) during replay"));
    }
    Ok(RunOutcome { results, notes })
}

fn eve_json(alert: &AlertRecord) -> Result<serde_json::Value, String> {
    let mut w = EveWriter::new(Vec::new());
    w.write_alert(alert).map_err(|e| e.to_string())?;
    let line = w.into_inner().map_err(|e| e.to_string())?;
    serde_json::from_slice(&line).map_err(|e| e.to_string())
}

fn describe(c: &AlertCheck) -> String {
    let mut parts = Vec::new();
    if let Some(sid) = c.sid() {
        parts.push(format!("sid {sid}"));
    }
    for (k, v) in &c.matches {
        if k != "alert.signature_id" {
            parts.push(format!("{k} {}", scalar(v).unwrap_or_else(|| "…".into())));
        }
    }
    if parts.is_empty() {
        "any alert".into()
    } else {
        parts.join(", ")
    }
}

fn matches_all(c: &AlertCheck, event: &serde_json::Value) -> bool {
    c.matches.iter().all(|(key, expected)| match key.as_str() {
        "has-key" => scalar(expected).is_some_and(|f| lookup(event, &f).is_some()),
        "not-has-key" => scalar(expected).is_some_and(|f| lookup(event, &f).is_none()),
        _ => lookup(event, key).is_some_and(|got| same(expected, &got)),
    })
}

/// suricata-verify's `find_value`: dotted path, `name[i]` indexes, `__len`.
fn lookup(event: &serde_json::Value, path: &str) -> Option<serde_json::Value> {
    let mut cur = event.clone();
    for part in path.split('.') {
        if part == "__len" {
            let len = match &cur {
                serde_json::Value::Array(a) => a.len(),
                serde_json::Value::Object(o) => o.len(),
                serde_json::Value::String(s) => s.len(),
                _ => return None,
            };
            return Some(len.into());
        }
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(name)?.clone();
        if let Some(i) = index {
            cur = cur.get(i)?.clone();
        }
    }
    Some(cur)
}

/// Equality as suricata-verify has it (values equal, or their string forms),
/// with addresses compared as addresses (Suricata writes IPv6 expanded).
fn same(expected: &Yaml, got: &serde_json::Value) -> bool {
    let want = scalar(expected).unwrap_or_default();
    let have = match got {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if want == have {
        return true;
    }
    if let (Some(a), Some(b)) = (expected.as_f64(), got.as_f64()) {
        return a == b;
    }
    matches!(
        (want.parse::<IpAddr>(), have.parse::<IpAddr>()),
        (Ok(a), Ok(b)) if a == b
    )
}

/// How a test came out.
#[derive(Debug, Clone)]
pub enum Status {
    Pass,
    /// The checks that failed.
    Fail(Vec<CheckResult>),
    Unsupported(Vec<Unsupported>),
    /// The test could not be read or run.
    Error(String),
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub name: String,
    pub status: Status,
    /// Every evaluated check, passing or not.
    pub results: Vec<CheckResult>,
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

/// Loads, classifies and (when supported) runs the test in `dir`.
pub fn verify_test(engine: &Engine, dir: &Path, name: &str) -> TestReport {
    let started = Instant::now();
    let mut report = TestReport {
        name: name.to_owned(),
        status: Status::Pass,
        results: Vec::new(),
        notes: Vec::new(),
        elapsed: Duration::ZERO,
    };
    report.status = match verify_inner(engine, dir, name, &mut report) {
        Ok(status) => status,
        Err(e) => Status::Error(e.to_string()),
    };
    report.elapsed = started.elapsed();
    report
}

fn verify_inner(
    engine: &Engine,
    dir: &Path,
    name: &str,
    report: &mut TestReport,
) -> Result<Status, VerifyError> {
    let test = VerifyTest::load(dir, name)?;
    let plan = classify(&test)?;
    report.notes = plan.settings.notes.clone();
    if plan.checks_not_applicable > 0 {
        report.notes.push(format!(
            "{} alert check(s) not for Suricata {SURICATA_VERSION}",
            plan.checks_not_applicable
        ));
    }
    if !plan.unsupported.is_empty() {
        return Ok(Status::Unsupported(plan.unsupported));
    }
    let outcome = run(engine, &test, &plan)?;
    report.results = outcome.results;
    report.notes.extend(outcome.notes);
    let failed: Vec<CheckResult> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .cloned()
        .collect();
    Ok(if failed.is_empty() {
        Status::Pass
    } else {
        Status::Fail(failed)
    })
}

/// A row of a suite's `index.tsv`.
#[derive(Debug, Clone, Default)]
pub struct IndexEntry {
    /// `payload-only`, `app-layer-proto`, `app-layer-keyword`.
    pub class: String,
    pub protos: Vec<String>,
    pub keywords: Vec<String>,
}

/// Reads `index.tsv` (test, class, protos, keywords, …) by test name.
pub fn load_index(path: &Path) -> Result<BTreeMap<String, IndexEntry>, VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|source| VerifyError::Io {
        test: "(index)".into(),
        file: path.display().to_string(),
        source,
    })?;
    let list = |s: Option<&str>| -> Vec<String> {
        s.unwrap_or("")
            .split(',')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let name = cols.next().filter(|n| !n.is_empty())?.to_owned();
            let class = cols.next().unwrap_or("").to_owned();
            let protos = list(cols.next());
            let keywords = list(cols.next());
            Some((
                name,
                IndexEntry {
                    class,
                    protos,
                    keywords,
                },
            ))
        })
        .collect())
}

/// Every test directory (one holding `test.yaml`) below `root`, as
/// (name relative to `root`, path), sorted by name.
pub fn discover(root: &Path) -> Result<Vec<(String, PathBuf)>, VerifyError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| VerifyError::Io {
            test: "(discover)".into(),
            file: dir.display().to_string(),
            source,
        })?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.join("test.yaml").is_file() {
                let name = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((name, path.clone()));
            }
            stack.push(path);
        }
    }
    out.sort();
    Ok(out)
}
