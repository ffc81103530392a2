//! The live data plane's YAML configuration: interfaces and mode, failure
//! policies (global and per module), limits, the bypass list, where the
//! bundle and vars live and the update server.
//!
//! [`Config::from_yaml`] parses and validates in one step; every error names
//! the key at fault. [`Config::effective_bypass`] is the bypass list the
//! bridge applies: the configured entries plus the management endpoints
//! (update server, telemetry, control API), which are never inspected.
//!
//! [`EXAMPLE`] shows every key (it is parsed by a test, so it stays valid).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sandgate_runtime::FailPolicy;
use serde::Deserialize;
use thiserror::Error;

use crate::decode::{proto, Decoded};

/// A configuration that could not be read or is invalid.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("live config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// YAML syntax, an unknown key or a value of the wrong type (serde's
    /// message names the key and the line).
    #[error("live config{}: {message}", origin(.path))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    /// A value that parsed but makes no sense.
    #[error("live config{}: key `{key}`: {problem}", origin(.path))]
    Invalid {
        path: Option<PathBuf>,
        key: String,
        problem: String,
    },
}

fn origin(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

/// A complete configuration with every key, for operators to start from.
pub const EXAMPLE: &str = "\
mode: inline                 # or ids
interfaces: [eth1, eth2]     # inline: side A, side B; ids: one
bundle: /var/lib/sandgate/bundle.sgb
vars: /etc/sandgate/vars.yaml
update_server: https://192.0.2.10:8443/   # an IP host is never inspected
vendor_key: /etc/sandgate/vendor.pub      # with update_server: only content it signed runs
appliance_id: gw-17                       # staged rollout, telemetry
state: /var/lib/sandgate/state            # last good set, status, telemetry spool
eve: /var/log/sandgate/eve.json           # alerts as EVE JSON lines
policy:
  default: fail-open         # module faults, stalled workers
  modules: { ips-rules: fail-closed }
workers: 2                   # default: one per core
limits: { queue: 4096, batch: 64, flows: 65536, watchdog_ms: 500 }
bypass:                      # forwarded without inspection
  - { net: 10.9.0.0/16 }
  - { net: 192.0.2.1/32, port: 22 }
management:                  # telemetry, control API: never inspected
  - { net: 192.0.2.20/32, port: 9100 }
";

const MAX_WORKERS: u64 = 256;
const MAX_QUEUE: u64 = 1 << 20;
const MAX_BATCH: u64 = 4096;
const MAX_FLOWS: u64 = 1 << 24;
const MAX_WATCHDOG_MS: u64 = 3_600_000;

/// Passive capture or inline bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Capture from one interface and alert; nothing is dropped.
    Ids,
    /// Forward between two interfaces through inspection.
    Inline,
}

/// Failure policies: the default and per module (by module name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// What a module fault or a stalled worker means for the packet when
    /// no module-specific policy applies (a stalled worker's packets are
    /// dropped when this or any running module's policy is fail-closed).
    #[serde(default)]
    pub default: FailPolicy,
    /// Per-module policy, by module name.
    #[serde(default)]
    pub modules: BTreeMap<String, FailPolicy>,
}

impl Policies {
    /// The policy of module `name`.
    pub fn of(&self, name: &str) -> FailPolicy {
        self.modules.get(name).copied().unwrap_or(self.default)
    }
}

/// Sizes and deadlines of the data plane.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Packets waiting per worker; when full, a packet is dropped and
    /// counted (`queue_overflow`). Default 4096.
    pub queue: usize,
    /// Packets per module call at most; a worker inspects whatever is
    /// queued up to this many, so an idle bridge adds no batching delay.
    /// Default 64.
    pub batch: usize,
    /// Flows tracked per worker (the flow table's memory bound). Default 65,536.
    pub flows: usize,
    /// A worker busy with one batch for longer than this is declared
    /// stalled; its packets then get the default policy. Default 500 ms.
    pub watchdog_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue: 4096,
            batch: 64,
            flows: 65_536,
            watchdog_ms: 500,
        }
    }
}

/// An address block, e.g. `10.0.0.0/8` or `2001:db8::1` (a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the block. IPv4 never matches an IPv6 block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One bypass entry: traffic with an endpoint in `net` (and on `port`,
/// when given) is forwarded without inspection. At least one is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BypassEntry {
    #[serde(default, deserialize_with = "de_cidr")]
    pub net: Option<Cidr>,
    #[serde(default)]
    pub port: Option<u16>,
}

fn de_cidr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cidr>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

impl BypassEntry {
    fn matches_endpoint(&self, ip: IpAddr, port: Option<u16>) -> bool {
        self.net.is_none_or(|n| n.contains(ip)) && self.port.is_none_or(|p| port == Some(p))
    }
}

/// The bypass list as the bridge applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bypass {
    pub entries: Vec<BypassEntry>,
}

impl Bypass {
    /// Whether either endpoint of `d` is on the list. Ports count only for
    /// TCP and UDP.
    pub fn matches(&self, d: &Decoded) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let ports = matches!(d.protocol, proto::TCP | proto::UDP);
        let (sp, dp) = if ports {
            (Some(d.src_port), Some(d.dst_port))
        } else {
            (None, None)
        };
        self.entries
            .iter()
            .any(|e| e.matches_endpoint(d.src, sp) || e.matches_endpoint(d.dst, dp))
    }
}

/// The whole live configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    /// Inline: the two bridged interfaces; IDS: the one captured.
    pub interfaces: Vec<String>,
    /// The signed bundle the modules come from.
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// Rule variables (`HOME_NET`, ...), a YAML file.
    #[serde(default)]
    pub vars: Option<PathBuf>,
    /// Where updates come from; when its host is an IP address, traffic to
    /// and from it is never inspected (management).
    #[serde(default)]
    pub update_server: Option<String>,
    /// The vendor's public key (PEM) bundles from the update server must
    /// be signed with.
    #[serde(default)]
    pub vendor_key: Option<PathBuf>,
    /// This appliance's id (staged rollout, telemetry).
    #[serde(default)]
    pub appliance_id: Option<String>,
    /// The update daemon's state directory.
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// Alerts are appended here as EVE JSON lines.
    #[serde(default)]
    pub eve: Option<PathBuf>,
    #[serde(default)]
    pub policy: Policies,
    /// Worker threads; default: one per available core.
    #[serde(default)]
    pub workers: Option<usize>,
    #[serde(default)]
    pub limits: Limits,
    /// Forwarded without inspection.
    #[serde(default)]
    pub bypass: Vec<BypassEntry>,
    /// The gateway's management endpoints (telemetry, control API):
    /// bypassed like `bypass`, listed apart so operators see what they are.
    #[serde(default)]
    pub management: Vec<BypassEntry>,
}

impl Config {
    /// A configuration with defaults for everything but mode and interfaces.
    pub fn new(mode: Mode, interfaces: &[&str]) -> Self {
        Config {
            mode,
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            bundle: None,
            vars: None,
            update_server: None,
            vendor_key: None,
            appliance_id: None,
            state: None,
            eve: None,
            policy: Policies::default(),
            workers: None,
            limits: Limits::default(),
            bypass: Vec::new(),
            management: Vec::new(),
        }
    }

    /// Read and validate a YAML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, Some(path))
    }

    /// Parse and validate YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, None)
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Config = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_path_buf),
            message: e.to_string(),
        })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, problem, .. } => ConfigError::Invalid {
                path: path.map(Path::to_path_buf),
                key,
                problem,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: counts, ranges and cross-key rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: String| ConfigError::Invalid {
            path: None,
            key: key.to_string(),
            problem,
        };
        let wanted = match self.mode {
            Mode::Inline => 2,
            Mode::Ids => 1,
        };
        if self.interfaces.len() != wanted {
            return Err(bad(
                "interfaces",
                format!(
                    "mode {:?} needs {wanted} interface(s), got {}",
                    self.mode,
                    self.interfaces.len()
                ),
            ));
        }
        if let Some(i) = self.interfaces.iter().position(|i| i.trim().is_empty()) {
            return Err(bad(
                &format!("interfaces[{i}]"),
                "empty interface name".into(),
            ));
        }
        if self.mode == Mode::Inline && self.interfaces[0] == self.interfaces[1] {
            return Err(bad(
                "interfaces",
                format!("cannot bridge `{}` to itself", self.interfaces[0]),
            ));
        }
        // Upper bounds keep a typo from allocating gigabytes up front
        // (queues are preallocated) or starting thousands of threads.
        for (key, value, max) in [
            ("workers", self.workers.unwrap_or(1) as u64, MAX_WORKERS),
            ("limits.queue", self.limits.queue as u64, MAX_QUEUE),
            ("limits.batch", self.limits.batch as u64, MAX_BATCH),
            ("limits.flows", self.limits.flows as u64, MAX_FLOWS),
            (
                "limits.watchdog_ms",
                self.limits.watchdog_ms,
                MAX_WATCHDOG_MS,
            ),
        ] {
            if value == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
            if value > max {
                return Err(bad(key, format!("{value} is above the maximum {max}")));
            }
        }
        for (list, entries) in [("bypass", &self.bypass), ("management", &self.management)] {
            if let Some(i) = entries
                .iter()
                .position(|e| e.net.is_none() && e.port.is_none())
            {
                return Err(bad(
                    &format!("{list}[{i}]"),
                    "needs `net`, `port` or both".into(),
                ));
            }
        }
        if let Some(url) = &self.update_server {
            update_server_endpoint(url).map_err(|p| bad("update_server", p))?;
        }
        Ok(())
    }

    /// Keys that differ in `new` but only take effect at the next start
    /// (the bridge reloads policies and the bypass list; it refuses mode,
    /// interfaces, workers and limits changes).
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        for (key, changed) in [
            ("bundle", self.bundle != new.bundle),
            ("vars", self.vars != new.vars),
            ("update_server", self.update_server != new.update_server),
            ("vendor_key", self.vendor_key != new.vendor_key),
            ("appliance_id", self.appliance_id != new.appliance_id),
            ("state", self.state != new.state),
            ("eve", self.eve != new.eve),
        ] {
            if changed {
                keys.push(key);
            }
        }
        keys
    }

    /// Worker count: configured, or one per available core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// `bypass` plus `management` plus the update server (when its host is
    /// an IP address).
    pub fn effective_bypass(&self) -> Bypass {
        let mut entries = self.bypass.clone();
        entries.extend(self.management.iter().cloned());
        if let Some(Ok(Some((addr, port)))) =
            self.update_server.as_deref().map(update_server_endpoint)
        {
            entries.push(BypassEntry {
                net: Some(Cidr {
                    addr,
                    prefix: if addr.is_ipv4() { 32 } else { 128 },
                }),
                port: Some(port),
            });
        }
        Bypass { entries }
    }
}

/// The update server's address and port when its URL names an IP address;
/// `None` for a host name (resolved by the update client, not here).
fn update_server_endpoint(url: &str) -> Result<Option<(IpAddr, u16)>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not a URL (no scheme)"))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => return Err(format!("`{url}`: scheme `{other}` is not http or https")),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unclosed `[`"))?;
        (h, tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("`{url}`: port `{p}` is not a number 0..=65535"))?,
        None => default_port,
    };
    Ok(host.parse::<IpAddr>().ok().map(|a| (a, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let c = Config::from_yaml(
            "mode: inline\ninterfaces: [a0, b0]\nupdate_server: https://192.0.2.10:8443/x\n\
             policy: {default: fail-closed, modules: {ips-rules: fail-open}}\nworkers: 2\n\
             limits: {queue: 16}\nbypass: [{net: 10.9.0.0/16}, {port: 22}]\n\
             management: [{net: '2001:db8::5', port: 9100}]\n",
        )
        .expect("valid");
        assert_eq!(c.limits.queue, 16);
        assert_eq!(c.limits.batch, 64, "unset limits keep their defaults");
        assert_eq!(c.policy.of("ips-rules"), FailPolicy::FailOpen);
        assert_eq!(c.policy.of("other"), FailPolicy::FailClosed);
        let b = c.effective_bypass();
        assert_eq!(b.entries.len(), 4, "bypass + management + update server");
        assert_eq!(b.entries[3].port, Some(8443));
        assert_eq!(b.entries[3].net, Some("192.0.2.10/32".parse().unwrap()));
    }

    #[test]
    fn the_documented_example_is_valid() {
        let c = Config::from_yaml(EXAMPLE).expect("EXAMPLE parses");
        assert_eq!(c.mode, Mode::Inline);
        assert_eq!(c.interfaces, ["eth1", "eth2"]);
        assert_eq!(c.policy.of("ips-rules"), FailPolicy::FailClosed);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.effective_bypass().entries.len(), 4);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |y: &str| Config::from_yaml(y).unwrap_err().to_string();
        assert!(err("mode: inline\ninterfaces: [a]\n").contains("key `interfaces`"));
        assert!(err("mode: ids\ninterfaces: [a]\nlimits: {queue: 0}\n")
            .contains("key `limits.queue`: must be at least 1"));
        assert!(err("mode: ids\ninterfaces: [a]\nbypass: [{}]\n").contains("key `bypass[0]`"));
        assert!(
            err("mode: ids\ninterfaces: [a]\nbypass: [{net: 10.0.0.0/40}]\n")
                .contains("prefix length must be 0..=32")
        );
        assert!(err("mode: ids\ninterfaces: [a]\nupdate_server: ftp://x/\n")
            .contains("key `update_server`"));
        assert!(err("mode: ids\ninterfaces: [a]\nqueue: 5\n").contains("unknown field `queue`"));
        assert!(err("mode: bridge\ninterfaces: [a]\n").contains("unknown variant `bridge`"));
        assert!(err("mode: inline\ninterfaces: [a, a]\n").contains("to itself"));
        assert!(err("mode: ids\ninterfaces: [a]\nworkers: 0\n").contains("key `workers`"));
        assert!(
            err("mode: ids\ninterfaces: [a]\nlimits: {queue: 1000000000000}\n")
                .contains("key `limits.queue`: 1000000000000 is above the maximum")
        );
    }

    #[test]
    fn load_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.yaml");
        std::fs::write(
            &path,
            "mode: inline\ninterfaces: [a0, b0]\nlimits: {batch: x}\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("live.yaml") && e.contains("limits.batch"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = Config::load(&dir.path().join("missing.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.yaml"), "{e}");
    }

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:10.1.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let host: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!(host.prefix, 128);
    }
}
