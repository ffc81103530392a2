//! Address and port set algebra: negation, nesting, variables, ranges, IPv6.

use std::net::IpAddr;

use super::super::{AddrSpec, PortSpec, SpecError, VarGroup, Vars};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn test_vars() -> Vars {
    let mut vars = Vars::suricata_defaults();
    vars.set(VarGroup::Address, "NESTED", "[$HOME_NET,!10.1.0.0/16]");
    vars.set(VarGroup::Address, "V6NET", "2001:db8::/32");
    vars.set(VarGroup::Port, "WEB", "[80,443,8080:8090]");
    vars.set(VarGroup::Port, "NOT_WEB", "!$WEB");
    vars
}

/// (spec, addresses inside, addresses outside)
const ADDR_CASES: &[(&str, &[&str], &[&str])] = &[
    (
        "any",
        &["0.0.0.0", "255.255.255.255", "::", "2001:db8::1"],
        &[],
    ),
    ("1.2.3.4", &["1.2.3.4"], &["1.2.3.5", "::1"]),
    (
        "10.0.0.0/8",
        &["10.0.0.0", "10.255.255.255"],
        &["11.0.0.0", "9.255.255.255"],
    ),
    // Host bits under the prefix are masked, as Suricata does.
    ("10.0.0.1/8", &["10.0.0.0", "10.9.9.9"], &["11.0.0.0"]),
    (
        "192.168.1.0/255.255.255.0",
        &["192.168.1.77"],
        &["192.168.2.1"],
    ),
    (
        "1.1.1.1-1.1.1.5",
        &["1.1.1.1", "1.1.1.5"],
        &["1.1.1.6", "1.1.1.0"],
    ),
    ("0.0.0.0/0", &["0.0.0.0", "8.8.8.8"], &["::1"]),
    (
        "[1.1.1.1, 2.2.2.0/24]",
        &["1.1.1.1", "2.2.2.200"],
        &["2.2.3.0"],
    ),
    // A list without brackets is accepted too.
    ("1.1.1.1,2.2.2.2", &["1.1.1.1", "2.2.2.2"], &["3.3.3.3"]),
    // Negation stays within the IPv4 family.
    ("!1.1.1.1", &["1.1.1.2", "0.0.0.0"], &["1.1.1.1", "::1"]),
    (
        "![1.1.1.1,2.2.2.0/24]",
        &["3.3.3.3"],
        &["1.1.1.1", "2.2.2.9", "::1"],
    ),
    (
        "[10.0.0.0/8,![10.1.0.0/16]]",
        &["10.2.0.1"],
        &["10.1.2.3", "11.0.0.1"],
    ),
    (
        "[10.0.0.0/8,!10.1.0.0/16,!10.2.0.0/16]",
        &["10.3.0.1"],
        &["10.1.0.1", "10.2.0.1"],
    ),
    (
        "[!$HOME_NET,!10.0.0.1]",
        &["8.8.8.8", "11.0.0.1"],
        &["10.0.0.1", "10.0.0.2", "192.168.0.1"],
    ),
    ("[any,!10.0.0.0/8]", &["9.9.9.9", "::1"], &["10.0.0.1"]),
    (
        "$HOME_NET",
        &["192.168.3.4", "10.0.0.1", "172.31.255.255"],
        &["172.32.0.0", "8.8.8.8"],
    ),
    (
        "$EXTERNAL_NET",
        &["8.8.8.8", "172.32.0.0"],
        &["192.168.3.4", "::1"],
    ),
    ("!$EXTERNAL_NET", &["192.168.3.4"], &["8.8.8.8"]),
    ("$NESTED", &["10.2.0.1", "192.168.0.1"], &["10.1.0.1"]),
    ("!$NESTED", &["10.1.0.1", "8.8.8.8"], &["10.2.0.1"]),
    (
        "[$HTTP_SERVERS,$V6NET]",
        &["10.0.0.1", "2001:db8::5"],
        &["2001:db9::", "8.8.8.8"],
    ),
    // A plain nested list is flattened into the outer include/exclude sets.
    (
        "[1.0.0.0/8,[2.0.0.0/8,!2.1.0.0/16]]",
        &["1.1.1.1", "2.2.0.1"],
        &["2.1.0.1"],
    ),
    // Double negation of a nested list.
    ("[0.0.0.0/0,![!10.0.0.0/8]]", &["10.1.1.1"], &["11.1.1.1"]),
    // IPv6.
    ("::1", &["::1"], &["::2", "0.0.0.1"]),
    (
        "2001:db8::/32",
        &["2001:db8::", "2001:db8:ffff::1"],
        &["2001:db9::"],
    ),
    ("2001:db8::1/32", &["2001:db8::ff"], &["2001:db7::"]),
    (
        "2001:db8::1-2001:db8::3",
        &["2001:db8::2"],
        &["2001:db8::4"],
    ),
    ("::/0", &["::", "2001:db8::1"], &["1.2.3.4"]),
    (
        "!2001:db8::/32",
        &["2001:db9::"],
        &["2001:db8::1", "1.2.3.4"],
    ),
    (
        "[1.2.3.4,2001:db8::/32,!2001:db8::1]",
        &["1.2.3.4", "2001:db8::2"],
        &["2001:db8::1"],
    ),
    // An IPv4-mapped address means that IPv4 address.
    ("::ffff:1.2.3.4", &["1.2.3.4"], &["1.2.3.5"]),
];

#[test]
fn address_algebra() {
    let vars = test_vars();
    for (spec, inside, outside) in ADDR_CASES {
        let set = AddrSpec::parse(spec, &vars).unwrap_or_else(|e| panic!("{spec}: {e}"));
        for a in *inside {
            assert!(set.contains_ip(ip(a)), "{spec} should contain {a}");
        }
        for a in *outside {
            assert!(!set.contains_ip(ip(a)), "{spec} should not contain {a}");
        }
    }
}

#[test]
fn any_is_the_full_range() {
    let vars = Vars::new();
    assert!(AddrSpec::parse("any", &vars)
        .map(|s| s.is_any())
        .unwrap_or(false));
    assert!(AddrSpec::parse("[0.0.0.0/0, ::/0]", &vars)
        .map(|s| s.is_any())
        .unwrap_or(false));
    assert!(!AddrSpec::parse("0.0.0.0/0", &vars)
        .map(|s| s.is_any())
        .unwrap_or(true));
    assert_eq!(AddrSpec::parse("ANY", &vars).ok(), Some(AddrSpec::any()));
}

#[test]
fn address_ranges_are_sorted_and_disjoint() {
    let set = AddrSpec::parse(
        "[10.0.0.5, 10.0.0.0/30, 10.0.0.4, 8.0.0.0/8, 9.0.0.0/8, 12.0.0.0/8]",
        &Vars::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let key = |s: &str| super::super::ip_key(ip(s));
    assert_eq!(
        set.ranges(),
        &[
            (key("8.0.0.0"), key("10.0.0.5")),
            (key("12.0.0.0"), key("12.255.255.255"))
        ]
    );
}

/// (spec, ports inside, ports outside)
const PORT_CASES: &[(&str, &[u16], &[u16])] = &[
    ("any", &[0, 1, 65535], &[]),
    ("80", &[80], &[79, 81]),
    ("0", &[0], &[1]),
    ("1024:", &[1024, 65535], &[1023]),
    (":1023", &[0, 1023], &[1024]),
    ("1000:2000", &[1000, 1500, 2000], &[999, 2001]),
    ("[80,443,8080:8090]", &[80, 443, 8085], &[81, 8091]),
    ("[80, 443]", &[80, 443], &[81]),
    ("!80", &[0, 79, 81, 65535], &[80]),
    ("[1:100,!50]", &[1, 49, 51, 100], &[0, 50, 101]),
    ("![80,443]", &[81], &[80, 443]),
    ("[1:100,![40:60]]", &[39, 61], &[50]),
    ("$HTTP_PORTS", &[80], &[8080]),
    ("$SHELLCODE_PORTS", &[81], &[80]),
    ("!$SHELLCODE_PORTS", &[80], &[81]),
    ("$FILE_DATA_PORTS", &[80, 110, 143], &[111]),
    ("$SIP_PORTS", &[5060, 5061], &[5062]),
    ("[$WEB,!8085]", &[80, 8084], &[8085]),
    ("$NOT_WEB", &[81], &[80, 8080]),
    ("!$NOT_WEB", &[80, 8080], &[81]),
    // include \ exclude: 22 is not a web port, so nothing of it survives.
    ("[$WEB,22,!$NOT_WEB]", &[80, 8080], &[22, 81]),
];

#[test]
fn port_algebra() {
    let vars = test_vars();
    for (spec, inside, outside) in PORT_CASES {
        let set = PortSpec::parse(spec, &vars).unwrap_or_else(|e| panic!("{spec}: {e}"));
        for p in *inside {
            assert!(set.contains(*p), "{spec} should contain {p}");
        }
        for p in *outside {
            assert!(!set.contains(*p), "{spec} should not contain {p}");
        }
    }
    assert!(PortSpec::parse("[0:100, 101:]", &vars)
        .map(|p| p.is_any())
        .unwrap_or(false));
    assert_eq!(
        PortSpec::parse("[5,1:3,2:4]", &vars)
            .ok()
            .map(|p| p.ranges().to_vec()),
        Some(vec![(1, 5)])
    );
}

/// (spec, substring of the error)
const BAD_ADDRS: &[(&str, &str)] = &[
    ("!any", "negation excludes everything"),
    ("[0.0.0.0/0,!0.0.0.0/0]", "negation excludes everything"),
    ("[1.1.1.1,!1.1.1.1]", "no addresses left"),
    ("!::/0", "no addresses left"),
    ("1.2.3.256", "is not an IPv4 address"),
    ("1.2.3.4/33", "prefix length /33 is above 32"),
    ("1.2.3.4/255.0.255.0", "not contiguous"),
    ("1.1.1.5-1.1.1.1", "range start above end"),
    ("2001:db8::/129", "prefix length /129"),
    ("2001:db8::zz", "is not an IPv6 address"),
    ("[1.1.1.1", "missing closing ']'"),
    ("1.1.1.1]", "unmatched ']'"),
    ("[]", "empty list element"),
    ("[1.1.1.1,,2.2.2.2]", "empty list element"),
    ("!!1.1.1.1", "double negation"),
    ("$", "'$' without a variable name"),
    ("[1.1.1.1]x", "unexpected \"x\""),
    ("$HOME_NET[", "unexpected \"[\""),
    ("", "empty list element"),
];

#[test]
fn bad_addresses_are_refused_with_a_reason() {
    let vars = test_vars();
    for (spec, why) in BAD_ADDRS {
        match AddrSpec::parse(spec, &vars) {
            Ok(set) => panic!("{spec} parsed as {set:?}"),
            Err(e) => assert!(e.to_string().contains(why), "{spec}: {e}"),
        }
    }
}

const BAD_PORTS: &[(&str, &str)] = &[
    ("!any", "negation excludes everything"),
    ("[80,!80]", "no ports left"),
    ("![0:65535]", "negation excludes everything"),
    ("80:70", "range start above end"),
    ("65536", "port 65536 is above 65535"),
    ("99999999999999999999", "is above 65535"),
    ("http", "is not a port number"),
    ("1:!5", "is not a port number"),
    ("-1", "is not a port number"),
    ("[80", "missing closing ']'"),
];

#[test]
fn bad_ports_are_refused_with_a_reason() {
    let vars = test_vars();
    for (spec, why) in BAD_PORTS {
        match PortSpec::parse(spec, &vars) {
            Ok(set) => panic!("{spec} parsed as {set:?}"),
            Err(e) => assert!(e.to_string().contains(why), "{spec}: {e}"),
        }
    }
}

#[test]
fn variables_are_looked_up_in_their_own_group() {
    let vars = Vars::suricata_defaults();
    assert_eq!(
        AddrSpec::parse("$HTTP_PORTS", &vars),
        Err(SpecError::UndefinedVariable {
            group: VarGroup::Address,
            name: "HTTP_PORTS".into()
        })
    );
    assert_eq!(
        PortSpec::parse("[$HOME_NET]", &vars),
        Err(SpecError::UndefinedVariable {
            group: VarGroup::Port,
            name: "HOME_NET".into()
        })
    );
}

#[test]
fn error_inside_a_variable_names_it() {
    let mut vars = Vars::new();
    vars.set(VarGroup::Address, "A", "[$B]");
    vars.set(VarGroup::Address, "B", "10.0.0.300");
    let err = AddrSpec::parse("$A", &vars)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("\"10.0.0.300\"") && err.contains("(in $B)"),
        "{err}"
    );
}

#[test]
fn cycles_are_reported_not_overflowed() {
    let mut vars = Vars::new();
    vars.set(VarGroup::Address, "A", "[1.1.1.1,$B]");
    vars.set(VarGroup::Address, "B", "!$C");
    vars.set(VarGroup::Address, "C", "$A");
    vars.set(VarGroup::Port, "SELF", "$SELF");
    assert_eq!(
        AddrSpec::parse("$A", &vars),
        Err(SpecError::VariableCycle {
            group: VarGroup::Address,
            cycle: "$A -> $B -> $C -> $A".into()
        })
    );
    assert_eq!(
        PortSpec::parse("[80,$SELF]", &vars),
        Err(SpecError::VariableCycle {
            group: VarGroup::Port,
            cycle: "$SELF -> $SELF".into()
        })
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}1.1.1.1{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = AddrSpec::parse(&deep, &Vars::new())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("nested deeper than 64"), "{err}");
    let mut vars = Vars::new();
    for i in 0..200 {
        vars.set(VarGroup::Port, &format!("P{i}"), &format!("$P{}", i + 1));
    }
    vars.set(VarGroup::Port, "P200", "80");
    let err = PortSpec::parse("$P0", &vars)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("nested deeper than 64"), "{err}");
}

#[test]
fn specs_round_trip_through_serde() {
    let vars = test_vars();
    let addr =
        AddrSpec::parse("[$EXTERNAL_NET,2001:db8::/32]", &vars).unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&addr).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(serde_json::from_str::<AddrSpec>(&json).ok(), Some(addr));
    let ports = PortSpec::parse("[$WEB,!8085]", &vars).unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&ports).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(serde_json::from_str::<PortSpec>(&json).ok(), Some(ports));
    // Deserialising normalises unsorted input, so lookups stay correct.
    let odd: PortSpec =
        serde_json::from_str("[[90,100],[1,5],[4,10]]").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(odd.ranges(), &[(1, 10), (90, 100)]);
}
