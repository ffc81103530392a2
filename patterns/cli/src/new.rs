//! `sandgate-patc new NAME`: scaffold a custom module crate that builds
//! unchanged with `sandgate-patc module build`.
//!
//! The crate depends on `sandgate-pattern-sdk` by path: the SDK of the
//! Sandgate checkout this patc was built from, or `--sdk PATH`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Where the SDK of this checkout lies (known when patc is compiled).
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

/// Arguments of `new`.
pub struct Args {
    pub name: String,
    /// Parent directory of the new crate (default: current directory).
    pub dir: Option<PathBuf>,
    /// The SDK crate to depend on (default: [`default_sdk`]).
    pub sdk: Option<PathBuf>,
}

/// A crate name cargo and the module id both accept: lowercase ASCII
/// letters, digits, `-` and `_`, starting with a letter.
fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !valid_name(&args.name) {
        bail!(
            "`{}` is not a usable module name: use lowercase letters, digits, `-` and `_`, \
             starting with a letter (at most 64)",
            args.name
        );
    }
    let sdk = args.sdk.unwrap_or_else(default_sdk);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the SDK crate {} does not exist: pass --sdk PATH (patterns/sdk of a Sandgate checkout)",
            sdk.display()
        )
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} is not the SDK crate (no Cargo.toml)", sdk.display());
    }
    let root = match &args.dir {
        Some(d) => d.join(&args.name),
        None => PathBuf::from(&args.name),
    };
    if root.exists() {
        bail!("{} already exists; not overwriting it", root.display());
    }
    let sdk_str = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not UTF-8", sdk.display()))?;
    let files = [
        ("Cargo.toml", cargo_toml(&args.name, sdk_str)),
        ("src/lib.rs", LIB_RS.to_string()),
        ("README.md", readme(&args.name)),
        ("vectors/README.md", VECTORS_README.to_string()),
        (".gitignore", "/target\n/*.wasm\n".to_string()),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "created module crate {} (SDK {}); build it with `sandgate-patc module build {}`",
        root.display(),
        sdk.display(),
        root.display()
    );
    Ok(())
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    // `{:?}` quotes the path as a TOML basic string (same escapes for the
    // characters a path holds).
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

# A standalone project, even when created inside another workspace.
[workspace]

[lib]
# cdylib: the wasm module; rlib: native unit tests (`cargo test`).
crate-type = ["cdylib", "rlib"]

[dependencies]
sandgate-pattern-sdk = {{ path = {sdk:?} }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

const LIB_RS: &str = r#"//! A Sandgate detection module. Edit `rules()` and `inspect()`, then
//! `sandgate-patc module build .` and `sandgate-patc test`.
//!
//! This example flags ICMP echo requests and replies whose payload is
//! mostly printable text: ping tunnels carry data that way, while ordinary
//! pings carry timestamps and counting bytes.

use sandgate_pattern_sdk::{export_inspector, Hits, Inspector, Packet, Rule};

/// The sid this module reports; pick sids in a range your team owns.
pub const SID_TEXT_IN_PING: u32 = 9_000_001;

/// Payloads shorter than this are not judged.
const MIN_PAYLOAD: usize = 16;

#[derive(Default)]
pub struct Module;

impl Inspector for Module {
    fn rules() -> Vec<Rule> {
        vec![Rule::new(SID_TEXT_IN_PING, "ICMP echo carrying text (possible ping tunnel)")
            .classtype("bad-unknown")]
    }

    fn inspect(&mut self, pkt: &Packet<'_>, hits: &mut Hits<'_>) {
        // ICMP (protocol 1): the engine reports the type as the source port.
        let echo = pkt.protocol() == 1 && matches!(pkt.src_port(), 0 | 8);
        if echo && mostly_text(pkt.payload()) {
            hits.alert(SID_TEXT_IN_PING);
        }
    }
}

/// At least 90 % printable ASCII, and long enough to judge.
pub fn mostly_text(payload: &[u8]) -> bool {
    let printable = payload.iter().filter(|b| (0x20..0x7f).contains(*b)).count();
    payload.len() >= MIN_PAYLOAD && printable * 10 >= payload.len() * 9
}

export_inspector!(Module);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_text_and_ping_padding_is_not() {
        assert!(mostly_text(b"PING-TUNNEL:exfil-chunk-0001"));
        let linux_ping: Vec<u8> = (0x08..0x38).collect();
        assert!(!mostly_text(&linux_ping));
        assert!(!mostly_text(b"short"));
    }
}
"#;

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\n\
         A Sandgate detection module (interface `sandgate:pattern@1.0.0`), written with\n\
         `sandgate-pattern-sdk`. See Sandgate's `docs/authors-guide.md`.\n\n\
         ```sh\n\
         cargo test                                    # unit tests, native\n\
         sandgate-patc module build . -o {name}.wasm   # build + the engine's load check\n\
         sandgate-patc test {name}.wasm --pcap vectors/{name}.pcap --expect vectors/expected.txt\n\
         ```\n\n\
         `vectors/` holds the capture the module is tested with and the alerts it must\n\
         raise (`SID COUNT` lines; record them with `--write-expect`).\n"
    )
}

const VECTORS_README: &str = "Test vectors: put a capture here (e.g. NAME.pcap) and record the \
alerts it must raise with\n`sandgate-patc test MODULE.wasm --pcap vectors/NAME.pcap --expect \
vectors/expected.txt --write-expect`;\ncheck the recorded file by hand, commit both, and from \
then on run the same command without\n`--write-expect`.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_crate_names() {
        assert!(valid_name("dns-tunnel"));
        assert!(valid_name("x2_y"));
        for bad in ["", "Dns", "1abc", "a b", "a/b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_manifest_points_at_the_sdk_and_stands_alone() {
        let toml = cargo_toml("probe", "/opt/sandgate/patterns/sdk");
        assert!(toml.contains("sandgate-pattern-sdk = { path = \"/opt/sandgate/patterns/sdk\" }"));
        assert!(toml.contains("\n[workspace]\n"));
        assert!(toml.contains("crate-type = [\"cdylib\", \"rlib\"]"));
    }
}
