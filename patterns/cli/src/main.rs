//! `sandgate-patc`: the vendor's and pattern author's command line.
//!
//! - `build`: rules and ClamAV databases to a bundle (`build.rs`),
//!   optionally with recorded test vectors and a signature;
//! - `keygen`: an Ed25519 key pair for signing;
//! - `matrix`: every variant × every field engine (`matrix.rs`, running the
//!   vectors through `vectors.rs`);
//! - `publish`: the matrix as a gate, then bundle + signed index (`publish.rs`);
//! - `inspect`: a module's interfaces, imports, exports, rules and the field
//!   engines that accept it (`inspect.rs`);
//! - `explain`: why a rule did or did not fire on each packet of a capture,
//!   traced by the real matcher (`explain.rs`);
//! - `new`: scaffold a custom module crate using the SDK (`new.rs`);
//! - `module build`: a custom module from Rust source to a checked component,
//!   optionally a bundle (`module.rs`);
//! - `test`: replay a capture through a module and diff alerts (`test.rs`).
//!
//! Exit codes: 0 success, 1 the content was refused (matrix failed, publish
//! refused), 2 the tool could not do its job (bad input, I/O).

mod build;
mod explain;
mod inspect;
mod matrix;
mod module;
mod new;
mod progress;
mod publish;
mod test;
mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::field::FieldList;
use sandgate_patterns::sign::{generate_key, write_private_key, write_public_key, KeyId};

#[derive(Parser)]
#[command(
    name = "sandgate-patc",
    version,
    about = "Compile IPS rules and AV signatures into Sandgate bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile rule files and ClamAV signature databases into a bundle.
    ///
    /// `.rules` files become one IPS module (interface 1.0.0);
    /// `.hdb/.hsb/.ndb/.ldb` databases (and `.ign2` lists of names to
    /// disable) become one AV module, `av-signatures` (interface 1.1.0).
    Build {
        /// Bundle file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// YAML file with suricata.yaml-style `vars:` (default: Suricata's defaults).
        #[arg(long)]
        vars: Option<PathBuf>,
        /// Module id inside the bundle.
        #[arg(long, default_value = "ips-rules")]
        module_id: String,
        /// Bundle version (default: the creation time in seconds).
        #[arg(long)]
        bundle_version: Option<u64>,
        /// Sign the bundle with this private key (from `keygen`).
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
        /// Capture to embed as each module's test vectors; the alerts the
        /// freshly built module raises on it become the expectation.
        #[arg(long, value_name = "PCAP")]
        vectors: Option<PathBuf>,
        /// Files to embed as the AV module's test vectors (repeatable); the
        /// signatures the freshly built module detects in them become the
        /// expectation.
        #[arg(long = "scan-vectors", value_name = "FILE")]
        scan_vectors: Vec<PathBuf>,
        /// Rule files (`.rules`) and signature databases (`.hdb`, `.hsb`,
        /// `.ndb`, `.ldb`, `.ign2`).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Write a new signing key pair: DIR/sandgate-signing.key (mode 0600) and
    /// DIR/sandgate-signing.pub. Never commit the private key.
    Keygen {
        /// Directory to write the key files into.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// Load every variant into a runtime configured as each field engine,
    /// run the test vectors, and print engine × module results.
    Matrix {
        bundle: PathBuf,
        /// The field list.
        #[arg(long, default_value = "field-engines.yaml")]
        field: PathBuf,
    },
    /// Check the signature and the matrix, then write the bundle and a signed
    /// index.json into DIR.
    Publish {
        bundle: PathBuf,
        /// Private key; the bundle must be signed by it, and it signs the index.
        #[arg(long)]
        key: PathBuf,
        /// Directory to publish into (served as static files).
        #[arg(long)]
        out: PathBuf,
        /// The field list.
        #[arg(long, default_value = "field-engines.yaml")]
        field: PathBuf,
        /// Staged rollout: share of the fleet (0–100) that takes it now.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        rollout: Option<u8>,
    },
    /// Show a module's (or every variant of a bundle's) interface versions,
    /// imports, exports, size, SHA-256, declared rules, fuel estimates and
    /// which field engines accept it.
    Inspect {
        /// A module component (`.wasm`) or a bundle.
        module: PathBuf,
        /// The field list (default: `field-engines.yaml` when it exists).
        #[arg(long)]
        field: Option<PathBuf>,
        /// List every declared rule, not only the first ten.
        #[arg(long)]
        rules: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show why a rule did or did not fire on the packets of a capture:
    /// header, flow, each content with its modifiers, pcre, byte tests,
    /// flowbits and the verdict, as the engine evaluates them.
    Explain {
        /// The rule's sid.
        #[arg(long)]
        sid: u32,
        /// The rule's gid.
        #[arg(long, default_value_t = 1)]
        gid: u32,
        /// The capture to replay.
        #[arg(long)]
        pcap: PathBuf,
        /// Rule files holding the rule (with the rules that set its flowbits).
        #[arg(long, num_args = 1.., required_unless_present = "bundle")]
        rules: Vec<PathBuf>,
        /// Or a bundle: the rule set compiled into its IPS module.
        #[arg(conflicts_with = "rules")]
        bundle: Option<PathBuf>,
        /// Explain only this packet (1-based, as in Wireshark).
        #[arg(long)]
        packet: Option<u64>,
        /// YAML file with suricata.yaml-style `vars:` (default: Suricata's defaults).
        #[arg(long)]
        vars: Option<PathBuf>,
        /// Non-matching packets shown in full besides the nearest miss.
        #[arg(long, default_value_t = 2)]
        show: usize,
        /// Show every packet the rule's header applies to.
        #[arg(long)]
        all: bool,
    },
    /// Scaffold a custom detection module crate (Rust, sandgate-pattern-sdk)
    /// that `module build` builds unchanged.
    New {
        /// Module (crate) name: lowercase letters, digits, `-`, `_`.
        name: String,
        /// Directory to create the crate in (default: the current one).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The SDK crate to depend on (default: this checkout's patterns/sdk).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Custom modules written in Rust with sandgate-pattern-sdk.
    Module {
        #[command(subcommand)]
        action: ModuleCommand,
    },
    /// Replay a capture through a module (component or bundle) as the
    /// appliance does, print its alerts, and compare them with an
    /// expectation file of `SID COUNT` lines (exit 1 on a difference).
    Test {
        /// A module component (.wasm) or a bundle.
        module: PathBuf,
        /// The capture to replay.
        #[arg(long)]
        pcap: PathBuf,
        /// Expected alerts: `SID COUNT` per line, `#` comments.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Record the alerts into the --expect file instead of comparing.
        #[arg(long, requires = "expect")]
        write_expect: bool,
    },
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Build the module crate in DIR for wasm32-unknown-unknown, make it a
    /// component, and run the engine's load check on it.
    Build {
        /// The module crate (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Component to write (default: DIR/NAME.wasm).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Cargo target directory for the build.
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Also write a bundle holding the module.
        #[arg(long, value_name = "BUNDLE")]
        bundle: Option<PathBuf>,
        /// Capture to embed in the bundle as test vectors; the alerts the
        /// module raises on it become the expectation.
        #[arg(long, value_name = "PCAP")]
        vectors: Option<PathBuf>,
        /// Sign the bundle with this private key (from `keygen`).
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
        /// Bundle version (default: the creation time in seconds).
        #[arg(long)]
        bundle_version: Option<u64>,
    },
}

/// The content was refused (exit 1), as opposed to a tool failure (exit 2).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("sandgate-patc: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("sandgate-patc: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build {
            output,
            vars,
            module_id,
            bundle_version,
            sign,
            vectors,
            scan_vectors,
            inputs,
        } => build::run(build::Args {
            output,
            vars,
            module_id,
            bundle_version,
            sign,
            vectors,
            scan_vectors,
            inputs,
        }),
        Command::Keygen { out } => keygen(&out),
        Command::Matrix { bundle, field } => {
            let b = Bundle::read(&bundle)?;
            let field = FieldList::from_yaml_file(&field)?;
            let m = matrix::run(&b, &field)?;
            print!("{}", m.table());
            let gaps = m.gaps();
            for (e, id) in m.not_shipped() {
                println!("module `{id}` is not shipped to {e} (it lacks the module's interface)");
            }
            if gaps.is_empty() {
                println!(
                    "every field engine has a working variant of every module shipped to it ({} engine(s), {} module(s))",
                    m.engines.len(),
                    m.modules.len()
                );
                return Ok(());
            }
            let list: Vec<String> = gaps
                .iter()
                .map(|(e, id)| format!("{e} has no working variant of module `{id}`"))
                .collect();
            Err(Refused(format!("matrix failed: {}", list.join("; "))).into())
        }
        Command::Publish {
            bundle,
            key,
            out,
            field,
            rollout,
        } => publish::run(publish::Args {
            bundle,
            key,
            out,
            field,
            rollout,
        }),
        Command::Inspect {
            module,
            field,
            rules,
            json,
        } => {
            let default = PathBuf::from("field-engines.yaml");
            let field = match field {
                Some(path) => Some(FieldList::from_yaml_file(&path)?),
                None if default.exists() => Some(FieldList::from_yaml_file(&default)?),
                None => None,
            };
            let args = inspect::Args {
                path: &module,
                field: field.as_ref(),
                all_rules: rules,
            };
            print!("{}", inspect::run(&args, json)?);
            Ok(())
        }
        Command::Explain {
            sid,
            gid,
            pcap,
            rules,
            bundle,
            packet,
            vars,
            show,
            all,
        } => {
            let vars = match &vars {
                Some(path) => sandgate_patterns::rules::Vars::from_yaml_file(path)
                    .with_context(|| format!("reading vars file {}", path.display()))?,
                None => sandgate_patterns::rules::Vars::suricata_defaults(),
            };
            let args = explain::Args {
                pcap,
                rules,
                packet,
                show,
                all,
            };
            let target = match &bundle {
                Some(path) => explain::load_target_from_bundle(path, gid, sid)?,
                None => explain::load_target(&args.rules, &vars, gid, sid)?,
            };
            let results = explain::evaluate(&target, &args.pcap)?;
            print!("{}", explain::render(&target, &results, &args)?);
            Ok(())
        }
        Command::New { name, dir, sdk } => new::run(new::Args { name, dir, sdk }),
        Command::Module {
            action:
                ModuleCommand::Build {
                    dir,
                    output,
                    target_dir,
                    bundle,
                    vectors,
                    sign,
                    bundle_version,
                },
        } => module::run(module::BuildArgs {
            dir,
            output,
            target_dir,
            bundle,
            vectors,
            sign,
            bundle_version,
        }),
        Command::Test {
            module,
            pcap,
            expect,
            write_expect,
        } => test::run(test::Args {
            module,
            pcap,
            expect,
            write_expect,
        }),
    }
}

fn keygen(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = generate_key()?;
    let private = dir.join("sandgate-signing.key");
    let public = dir.join("sandgate-signing.pub");
    write_private_key(&key, &private)?;
    write_public_key(&key.verifying_key(), &public)?;
    println!(
        "wrote {} (private, mode 0600; keep it out of the repository) and {} (key id {})",
        private.display(),
        public.display(),
        KeyId::of(&key.verifying_key())
    );
    Ok(())
}
