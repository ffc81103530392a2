//! Rule variables (`$HOME_NET`, `$HTTP_PORTS`, ...) as suricata.yaml defines
//! them.
//!
//! Values are kept as the text written in the vars file and expanded when a
//! rule is parsed, so a variable may refer to other variables in either
//! order. Loading checks every variable once (syntax, undefined references,
//! cycles), the way Suricata tests its conf vars at start-up, so that a bad
//! vars file is reported against the variable rather than against every rule
//! that uses it.

use std::collections::BTreeMap;
use std::path::Path;

use super::addr::{AddrSpec, PortSpec};
use super::group::{SpecError, VarGroup};

/// Address and port variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    address: BTreeMap<String, String>,
    port: BTreeMap<String, String>,
}

/// Why a vars file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    #[error("{file}: cannot read vars file: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid YAML: {source}")]
    Yaml {
        file: String,
        #[source]
        source: serde_yaml::Error,
    },
    /// The document does not have the expected shape.
    #[error("{file}: {why}")]
    Shape { file: String, why: String },
    /// A variable's value is not a usable string.
    #[error("{file}: vars.{}.{name}: {why}", group.yaml_key())]
    BadValue {
        file: String,
        group: VarGroup,
        name: String,
        why: String,
    },
    /// A variable does not resolve (bad syntax, undefined reference, cycle).
    #[error("{file}: vars.{}.{name}: {source}", group.yaml_key())]
    Unresolvable {
        file: String,
        group: VarGroup,
        name: String,
        #[source]
        source: SpecError,
    },
}

/// The `address-groups` Suricata ships in suricata.yaml (7.x/8.x).
const DEFAULT_ADDRESS_GROUPS: &[(&str, &str)] = &[
    ("HOME_NET", "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"),
    ("EXTERNAL_NET", "!$HOME_NET"),
    ("HTTP_SERVERS", "$HOME_NET"),
    ("SMTP_SERVERS", "$HOME_NET"),
    ("SQL_SERVERS", "$HOME_NET"),
    ("DNS_SERVERS", "$HOME_NET"),
    ("TELNET_SERVERS", "$HOME_NET"),
    ("AIM_SERVERS", "$EXTERNAL_NET"),
    ("DC_SERVERS", "$HOME_NET"),
    ("DNP3_SERVER", "$HOME_NET"),
    ("DNP3_CLIENT", "$HOME_NET"),
    ("MODBUS_CLIENT", "$HOME_NET"),
    ("MODBUS_SERVER", "$HOME_NET"),
    ("ENIP_CLIENT", "$HOME_NET"),
    ("ENIP_SERVER", "$HOME_NET"),
];

/// The `port-groups` Suricata ships in suricata.yaml (8.x; `SIP_PORTS` is new
/// in 8.0, the rest are as in 7.x).
const DEFAULT_PORT_GROUPS: &[(&str, &str)] = &[
    ("HTTP_PORTS", "80"),
    ("SHELLCODE_PORTS", "!80"),
    ("ORACLE_PORTS", "1521"),
    ("SSH_PORTS", "22"),
    ("DNP3_PORTS", "20000"),
    ("MODBUS_PORTS", "502"),
    ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
    ("FTP_PORTS", "21"),
    ("GENEVE_PORTS", "6081"),
    ("VXLAN_PORTS", "4789"),
    ("TEREDO_PORTS", "3544"),
    ("SIP_PORTS", "[5060, 5061]"),
];

impl Vars {
    /// No variables at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `vars:` section of the suricata.yaml that Suricata ships.
    pub fn suricata_defaults() -> Self {
        let collect = |list: &[(&str, &str)]| {
            list.iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        Self {
            address: collect(DEFAULT_ADDRESS_GROUPS),
            port: collect(DEFAULT_PORT_GROUPS),
        }
    }

    /// Loads a YAML file: either a whole suricata.yaml (only `vars:` is
    /// read), or a file whose top level is `address-groups`/`port-groups`.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, VarsError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| VarsError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_yaml_str_named(&text, &file)
    }

    /// [`Vars::from_yaml_file`] for text already in memory; errors name the
    /// input `<vars>`.
    pub fn from_yaml_str(text: &str) -> Result<Self, VarsError> {
        Self::from_yaml_str_named(text, "<vars>")
    }

    /// [`Vars::from_yaml_str`] with the display name used in errors.
    pub fn from_yaml_str_named(text: &str, file: &str) -> Result<Self, VarsError> {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| VarsError::Yaml {
                file: file.to_owned(),
                source,
            })?;
        let shape = |why: &str| VarsError::Shape {
            file: file.to_owned(),
            why: why.to_owned(),
        };
        let top = doc
            .as_mapping()
            .ok_or_else(|| shape("expected a mapping at the top level"))?;
        let section = match top.get("vars") {
            Some(vars) => vars
                .as_mapping()
                .ok_or_else(|| shape("`vars` is not a mapping"))?,
            None => top,
        };
        if section.get("address-groups").is_none() && section.get("port-groups").is_none() {
            return Err(shape(
                "no `vars`, `address-groups` or `port-groups` section found",
            ));
        }
        let mut vars = Self::new();
        for group in [VarGroup::Address, VarGroup::Port] {
            let Some(node) = section.get(group.yaml_key()) else {
                continue;
            };
            if node.is_null() {
                continue;
            }
            let map = node.as_mapping().ok_or_else(|| VarsError::Shape {
                file: file.to_owned(),
                why: format!("`{}` is not a mapping", group.yaml_key()),
            })?;
            for (key, value) in map {
                let name = scalar(key).ok_or_else(|| VarsError::Shape {
                    file: file.to_owned(),
                    why: format!("a key in `{}` is not a name", group.yaml_key()),
                })?;
                let value = scalar(value).ok_or_else(|| VarsError::BadValue {
                    file: file.to_owned(),
                    group,
                    name: name.clone(),
                    why: "value is not a string or number (a list must be quoted: \"[a,b]\")"
                        .into(),
                })?;
                vars.set(group, &name, &value);
            }
        }
        vars.validate_named(file)?;
        Ok(vars)
    }

    /// Sets (or replaces) one variable; `name` is without the `$`.
    pub fn set(&mut self, group: VarGroup, name: &str, value: &str) {
        let map = match group {
            VarGroup::Address => &mut self.address,
            VarGroup::Port => &mut self.port,
        };
        map.insert(name.to_owned(), value.to_owned());
    }

    /// The value of `$name` as written, if defined.
    pub fn get(&self, group: VarGroup, name: &str) -> Option<&str> {
        let map = match group {
            VarGroup::Address => &self.address,
            VarGroup::Port => &self.port,
        };
        map.get(name).map(String::as_str)
    }

    /// All variables of one group, sorted by name.
    pub fn iter(&self, group: VarGroup) -> impl Iterator<Item = (&str, &str)> {
        let map = match group {
            VarGroup::Address => &self.address,
            VarGroup::Port => &self.port,
        };
        map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Resolves every variable; the first failure names the variable.
    pub fn validate(&self) -> Result<(), VarsError> {
        self.validate_named("<vars>")
    }

    fn validate_named(&self, file: &str) -> Result<(), VarsError> {
        for group in [VarGroup::Address, VarGroup::Port] {
            for (name, _) in self.iter(group) {
                let reference = format!("${name}");
                let result = match group {
                    VarGroup::Address => AddrSpec::parse(&reference, self).map(drop),
                    VarGroup::Port => PortSpec::parse(&reference, self).map(drop),
                };
                result.map_err(|source| VarsError::Unresolvable {
                    file: file.to_owned(),
                    group,
                    name: name.to_owned(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// A YAML string or number as text.
fn scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
