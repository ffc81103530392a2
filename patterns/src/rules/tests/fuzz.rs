//! Garbage in, errors out: no input makes the parser panic or overflow.

use super::super::{parse_rules, AddrSpec, PortSpec, RuleSource, VarGroup, Vars};

const COMPLEX: &[&str] = &[
    r#"alert http $EXTERNAL_NET any -> $HOME_NET $HTTP_PORTS (msg:"ET WEB \"x\" \; y"; flow:established,to_server; content:!"GET|20|/a\;b"; http_method; content:"|3B 3A|\\"; pcre:"/(a|b)\;\x22?/Ui"; reference:url,a\:b; metadata:created_at 2020_01_01; sid:2000001; rev:2;)"#,
    r#"drop tcp [10.0.0.0/8,![10.1.0.0/16,!10.1.2.3],$HOME_NET] [1024:,!8080] <> [!$EXTERNAL_NET,2001:db8::/32,::1] [$SHELLCODE_PORTS,![80:90,!85]] (msg:"nested"; byte_test:4,>,1000,0,relative; sid:7;)"#,
    "alert dns any any -> any any (msg:\"回复 Sinkhole\"; dns.query; content:\"evil\"; nocase; endswith; sid:3; \\\n rev:1;)",
];

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn vars() -> Vars {
    let mut vars = Vars::suricata_defaults();
    vars.set(VarGroup::Address, "LOOP", "[$LOOP2]");
    vars.set(VarGroup::Address, "LOOP2", "!$LOOP");
    vars
}

fn parse_all(text: &str, vars: &Vars) {
    let results = parse_rules(
        &RuleSource {
            file: "fuzz.rules",
            text,
        },
        vars,
    );
    for err in results.into_iter().filter_map(Result::err) {
        // Every error must render.
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn every_prefix_of_complex_rules_parses_or_errors() {
    let vars = vars();
    for rule in COMPLEX {
        parse_all(rule, &vars);
        for (i, _) in rule.char_indices() {
            parse_all(&rule[..i], &vars);
            parse_all(&rule[i..], &vars);
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    const ALPHABET: &[u8] = b"!$[]();:\\\"|,-> <#/\n\r\t0123456789abcdefx.any";
    let vars = vars();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for round in 0..6_000 {
        let base = COMPLEX[round % COMPLEX.len()].as_bytes();
        let mut bytes = base.to_vec();
        for _ in 0..=rng.below(8) {
            let pos = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 if pos < bytes.len() => bytes[pos] = ALPHABET[rng.below(ALPHABET.len())],
                1 => bytes.insert(pos, ALPHABET[rng.below(ALPHABET.len())]),
                2 if pos < bytes.len() => {
                    bytes.remove(pos);
                }
                _ => bytes.insert(pos, u8::try_from(rng.below(256)).unwrap_or(0)),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        parse_all(&text, &vars);
    }
}

#[test]
fn random_address_and_port_lists_never_panic() {
    const PIECES: &[&str] = &[
        "[",
        "]",
        "!",
        ",",
        "$HOME_NET",
        "$LOOP",
        "$HTTP_PORTS",
        "any",
        "1.2.3.4",
        "/8",
        "/33",
        "-",
        "::1",
        "::",
        "/129",
        "80",
        ":",
        "65535",
        "99999",
        " ",
        "10.0.0.0/8",
    ];
    let vars = vars();
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..rng.below(12) {
            text.push_str(PIECES[rng.below(PIECES.len())]);
        }
        let _ = AddrSpec::parse(&text, &vars);
        let _ = PortSpec::parse(&text, &vars);
    }
}

#[test]
fn huge_and_odd_inputs_are_handled() {
    let vars = vars();
    parse_all(&"(".repeat(100_000), &vars);
    parse_all(&"[".repeat(100_000), &vars);
    parse_all(
        &format!("alert tcp {} any -> any any (sid:1;)", "[".repeat(50_000)),
        &vars,
    );
    parse_all(
        &format!("alert tcp any any -> any any ({})", "a:b;".repeat(50_000)),
        &vars,
    );
    parse_all(&"\\\n".repeat(10_000), &vars);
    parse_all("\u{0}\u{feff}\u{202e}alert", &vars);
}
