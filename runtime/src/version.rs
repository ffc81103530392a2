//! Interface versions and the names that carry them.
//!
//! Component import and export names look like `sandgate:pattern/log@1.0.0`;
//! [`InterfaceName::parse`] splits them so the load-time check can compare the
//! version a module wants against the versions the engine offers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The WIT package every Sandgate interface lives in.
pub const PACKAGE: &str = "sandgate:pattern";

/// A `MAJOR.MINOR.PATCH` interface version (no pre-release or build suffix).
///
/// Reads and writes as the string `"1.0.0"` in YAML/JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InterfaceVersion {
    /// Incompatible changes bump this.
    pub major: u32,
    /// Additions (new functions or interfaces) bump this.
    pub minor: u32,
    /// Fixes that change no types bump this.
    pub patch: u32,
}

impl InterfaceVersion {
    /// The version a module built against `self` needs; `const` for defaults.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Whether an engine offering `self` can serve a module that wants `wanted`.
    ///
    /// Semver rules: same major and not older; for major 0 the minor must match too.
    pub fn satisfies(self, wanted: InterfaceVersion) -> bool {
        if self.major != wanted.major {
            return false;
        }
        if self.major == 0 && self.minor != wanted.minor {
            return false;
        }
        self >= wanted
    }
}

impl fmt::Display for InterfaceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A version string that is not plain `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAJOR.MINOR.PATCH version")]
pub struct BadVersion(pub String);

impl FromStr for InterfaceVersion {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.to_string());
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, BadVersion> {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let version = InterfaceVersion::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

impl TryFrom<String> for InterfaceVersion {
    type Error = BadVersion;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<InterfaceVersion> for String {
    fn from(v: InterfaceVersion) -> String {
        v.to_string()
    }
}

/// Formats a list of versions as `1.0.0, 1.1.0` for error messages.
pub(crate) struct VersionList<'a>(pub &'a [InterfaceVersion]);

impl fmt::Display for VersionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// A `namespace:package/interface@version` name split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceName {
    /// `namespace:package`, e.g. `sandgate:pattern`.
    pub package: String,
    /// The interface inside the package, e.g. `log`.
    pub interface: String,
    /// The version after `@`, `None` when the name carries none.
    pub version: Option<Result<InterfaceVersion, BadVersion>>,
}

impl InterfaceName {
    /// Splits a component import/export name; `None` when it is not of the
    /// `ns:pkg/iface[@ver]` form (a plain name such as `run`).
    pub fn parse(name: &str) -> Option<InterfaceName> {
        let (path, version) = match name.split_once('@') {
            Some((path, v)) => (path, Some(v.parse::<InterfaceVersion>())),
            None => (name, None),
        };
        let (package, interface) = path.split_once('/')?;
        if !package.contains(':') || interface.is_empty() {
            return None;
        }
        Some(InterfaceName {
            package: package.to_string(),
            interface: interface.to_string(),
            version,
        })
    }

    /// Whether this name is in the `sandgate:pattern` package.
    pub fn is_sandgate(&self) -> bool {
        self.package == PACKAGE
    }

    /// `sandgate:pattern/log` without the version.
    pub fn unversioned(&self) -> String {
        format!("{}/{}", self.package, self.interface)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_versions_only() {
        assert_eq!("1.2.3".parse(), Ok(InterfaceVersion::new(1, 2, 3)));
        for bad in ["1.2", "1.2.3.4", "1.2.x", "", "1..2", "1.2.3-rc1", "+1.2.3"] {
            assert!(bad.parse::<InterfaceVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn semver_compatibility() {
        let v = InterfaceVersion::new;
        assert!(v(1, 1, 0).satisfies(v(1, 0, 0)));
        assert!(v(1, 0, 0).satisfies(v(1, 0, 0)));
        assert!(!v(1, 0, 0).satisfies(v(1, 2, 0)));
        assert!(!v(1, 0, 0).satisfies(v(1, 0, 1)));
        assert!(!v(2, 0, 0).satisfies(v(1, 0, 0)));
        assert!(!v(0, 2, 0).satisfies(v(0, 1, 0)));
    }

    #[test]
    fn splits_interface_names() {
        let n = InterfaceName::parse("sandgate:pattern/log@1.0.0").unwrap();
        assert!(n.is_sandgate());
        assert_eq!(n.interface, "log");
        assert_eq!(n.version, Some(Ok(InterfaceVersion::new(1, 0, 0))));
        assert!(InterfaceName::parse("run").is_none());
        let w = InterfaceName::parse("wasi:cli/environment@0.2.0").unwrap();
        assert!(!w.is_sandgate());
    }
}
