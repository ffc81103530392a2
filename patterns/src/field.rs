//! The field list (`field-engines.yaml`): every engine release still
//! deployed and the interface versions each implements.
//!
//! The compatibility matrix (`sandgate-patc matrix`) loads every bundle
//! variant into a runtime configured as each entry; a bundle ships only when
//! every entry has a working variant of every module.
//!
//! ```yaml
//! engines:
//!   - name: sandgate
//!     release: 0.1.0
//!     interfaces: ["1.0.0"]
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A `MAJOR.MINOR.PATCH` interface version as bundles and indexes carry it.
///
/// Mirrors `sandgate_runtime::InterfaceVersion` (patterns sits upstream of
/// the runtime, so it cannot use that type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Whether an engine offering `self` serves a module wanting `wanted`:
    /// same major and not older (for major 0 the minor must match too).
    pub fn satisfies(self, wanted: Version) -> bool {
        self.major == wanted.major
            && (self.major != 0 || self.minor == wanted.minor)
            && self >= wanted
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A string that is not a plain `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a MAJOR.MINOR.PATCH version")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, BadVersion> {
        let parts: Vec<&str> = s.split('.').collect();
        let num = |p: &str| -> Option<u32> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        match parts.as_slice() {
            [a, b, c] => match (num(a), num(b), num(c)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Version {
                    major,
                    minor,
                    patch,
                }),
                _ => Err(BadVersion(s.to_string())),
            },
            _ => Err(BadVersion(s.to_string())),
        }
    }
}

/// Whether any of `offered` serves a module wanting `wanted` (both as
/// version strings; an unparsable string serves nothing).
pub fn offers(offered: &[String], wanted: &str) -> bool {
    let Ok(wanted) = wanted.parse::<Version>() else {
        return false;
    };
    offered
        .iter()
        .filter_map(|o| o.parse::<Version>().ok())
        .any(|o| o.satisfies(wanted))
}

/// One engine release in the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldEngine {
    /// Product name, e.g. `sandgate`.
    pub name: String,
    /// Release, e.g. `0.1.0`.
    pub release: String,
    /// Interface versions it implements, e.g. `["1.0.0"]`.
    pub interfaces: Vec<String>,
}

impl FieldEngine {
    /// `name release`, as tables print it.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.release)
    }
}

/// Every engine release still deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldList {
    pub engines: Vec<FieldEngine>,
}

/// Why a field list was refused. Names the file.
#[derive(Debug, Error)]
pub enum FieldError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl FieldList {
    /// Read and validate a field list file.
    pub fn from_yaml_file(path: &Path) -> Result<Self, FieldError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FieldError::Io {
            path: name.clone(),
            source,
        })?;
        Self::from_yaml(&text, &name)
    }

    /// Parse and validate; `name` is used in errors.
    pub fn from_yaml(text: &str, name: &str) -> Result<Self, FieldError> {
        let invalid = |reason: String| FieldError::Invalid {
            path: name.to_string(),
            reason,
        };
        let list: FieldList = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if list.engines.is_empty() {
            return Err(invalid("lists no engine".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &list.engines {
            if e.name.is_empty() || e.release.is_empty() {
                return Err(invalid("an engine has an empty name or release".into()));
            }
            if !seen.insert(e.label()) {
                return Err(invalid(format!("engine `{}` is listed twice", e.label())));
            }
            if e.interfaces.is_empty() {
                return Err(invalid(format!(
                    "engine `{}` implements no interface version",
                    e.label()
                )));
            }
            for v in &e.interfaces {
                v.parse::<Version>()
                    .map_err(|b| invalid(format!("engine `{}`: {b}", e.label())))?;
            }
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_field_list_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../field-engines.yaml");
        let list = FieldList::from_yaml_file(&path).expect("valid");
        assert!(list
            .engines
            .iter()
            .any(|e| e.interfaces.contains(&"1.0.0".into())));
    }

    #[test]
    fn bad_field_lists_name_the_problem() {
        for (yaml, needle) in [
            ("engines: []", "no engine"),
            ("engines: [{name: a, release: '1', interfaces: []}]", "no interface"),
            ("engines: [{name: a, release: '1', interfaces: ['1.0']}]", "`1.0`"),
            (
                "engines: [{name: a, release: '1', interfaces: ['1.0.0']}, {name: a, release: '1', interfaces: ['1.0.0']}]",
                "twice",
            ),
            ("engines: [{name: a, release: '1', interfaces: ['1.0.0'], x: 1}]", "unknown field"),
        ] {
            let e = FieldList::from_yaml(yaml, "f.yaml").expect_err(yaml);
            let msg = e.to_string();
            assert!(msg.starts_with("f.yaml: ") && msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn versions_follow_semver_compatibility() {
        let v = |s: &str| s.parse::<Version>().expect("version");
        assert!(v("1.1.0").satisfies(v("1.0.0")));
        assert!(!v("1.0.0").satisfies(v("1.1.0")));
        assert!(!v("1.0.0").satisfies(v("2.0.0")));
        assert!(!v("0.2.0").satisfies(v("0.1.0")));
        assert!(offers(&["1.0.0".into()], "1.0.0"));
        assert!(!offers(&["1.0.0".into()], "2.0.0"));
        assert!(!offers(&["1.0.0".into()], "junk"));
    }
}
