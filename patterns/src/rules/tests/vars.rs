//! Loading vars from YAML, the Suricata defaults, and bad vars files.

use super::super::{AddrSpec, PortSpec, VarGroup, Vars, VarsError};

#[test]
fn defaults_match_suricata_yaml() {
    let vars = Vars::suricata_defaults();
    let addr = [
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
    let ports = [
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
    assert_eq!(vars.iter(VarGroup::Address).count(), addr.len());
    assert_eq!(vars.iter(VarGroup::Port).count(), ports.len());
    for (name, value) in addr {
        assert_eq!(vars.get(VarGroup::Address, name), Some(value), "{name}");
    }
    for (name, value) in ports {
        assert_eq!(vars.get(VarGroup::Port, name), Some(value), "{name}");
    }
    assert!(vars.validate().is_ok());
}

const SURICATA_YAML: &str = r#"%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[10.10.0.0/16, 2001:db8::/32]"
    EXTERNAL_NET: "!$HOME_NET"
    DNS_SERVERS: 10.10.0.53
  port-groups:
    HTTP_PORTS: "[80,8080]"
    ORACLE_PORTS: 1521
default-rule-path: /etc/suricata/rules
outputs:
  - fast:
      enabled: yes
"#;

#[test]
fn loads_the_vars_section_of_a_suricata_yaml() {
    let vars = Vars::from_yaml_str(SURICATA_YAML).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vars.get(VarGroup::Port, "ORACLE_PORTS"), Some("1521"));
    assert_eq!(
        vars.get(VarGroup::Address, "DNS_SERVERS"),
        Some("10.10.0.53")
    );
    let home = AddrSpec::parse("$HOME_NET", &vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(home.contains_ip("2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"))));
    let ext = AddrSpec::parse("$EXTERNAL_NET", &vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(ext.contains_ip("2001:db9::1".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert!(!ext.contains_ip("10.10.1.1".parse().unwrap_or_else(|e| panic!("{e}"))));
    let http = PortSpec::parse("$HTTP_PORTS", &vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(http.contains(8080));
}

#[test]
fn loads_a_bare_groups_file() {
    let vars = Vars::from_yaml_str("address-groups:\n  HOME_NET: \"10.0.0.0/8\"\nport-groups:\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vars.get(VarGroup::Address, "HOME_NET"), Some("10.0.0.0/8"));
    assert_eq!(vars.iter(VarGroup::Port).count(), 0);
}

#[test]
fn loads_from_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = dir.path().join("vars.yaml");
    std::fs::write(&good, SURICATA_YAML).unwrap_or_else(|e| panic!("{e}"));
    assert!(Vars::from_yaml_file(&good).is_ok());

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "vars:\n  port-groups:\n    HTTP_PORTS: \"80:70\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let err = Vars::from_yaml_file(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("bad.yaml") && err.contains("vars.port-groups.HTTP_PORTS"),
        "{err}"
    );
    assert!(err.contains("range start above end"), "{err}");

    let missing = dir.path().join("missing.yaml");
    assert!(matches!(
        Vars::from_yaml_file(&missing),
        Err(VarsError::Io { .. })
    ));
}

/// (yaml, substring of the error)
const BAD_FILES: &[(&str, &str)] = &[
    ("vars: [1, 2", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    (
        "outputs: {}\n",
        "no `vars`, `address-groups` or `port-groups` section",
    ),
    ("vars: 3\n", "`vars` is not a mapping"),
    ("address-groups: [1]\n", "`address-groups` is not a mapping"),
    (
        "address-groups:\n  HOME_NET: [10.0.0.0/8]\n",
        "vars.address-groups.HOME_NET: value is not a string or number",
    ),
    (
        "address-groups:\n  EXTERNAL_NET: \"!$HOME_NET\"\n",
        "undefined variable $HOME_NET",
    ),
    (
        "address-groups:\n  A: \"$B\"\n  B: \"[1.1.1.1,$A]\"\n",
        "variable cycle: $A -> $B -> $A",
    ),
    (
        "port-groups:\n  P: \"!any\"\n",
        "negation excludes everything",
    ),
    ("address-groups:\n  H: \"\"\n", "empty list element"),
];

#[test]
fn bad_vars_files_are_refused_with_the_variable_named() {
    for (yaml, why) in BAD_FILES {
        match Vars::from_yaml_str(yaml) {
            Ok(vars) => panic!("{yaml:?} loaded as {vars:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("<vars>: "), "{yaml:?}: {msg}");
                assert!(msg.contains(why), "{yaml:?}: {msg}");
            }
        }
    }
}
