//! `sandgate-patc`: the pattern compiler's command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::Vars;

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
    /// Compile rule files into a bundle.
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
        /// Rule files (`.rules`).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
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
            inputs,
        } => {
            let vars = match vars {
                Some(path) => Vars::from_yaml_file(&path)
                    .with_context(|| format!("reading vars file {}", path.display()))?,
                None => Vars::suricata_defaults(),
            };
            let started = std::time::Instant::now();
            let report = build(&BuildOptions {
                inputs,
                vars,
                module_id,
                bundle_version,
            })?;
            for s in &report.skipped {
                eprintln!("warning: skipped {s}");
            }
            report
                .bundle
                .write(&output)
                .with_context(|| format!("writing {}", output.display()))?;
            let size: usize = report.bundle.modules.iter().map(Vec::len).sum();
            println!(
                "compiled {} of {} rules into {} module(s), {} KiB, in {:.2} s",
                report.rules_compiled,
                report.rules_total,
                report.bundle.modules.len(),
                size / 1024,
                started.elapsed().as_secs_f64()
            );
            if !report.skipped.is_empty() {
                let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
                for s in &report.skipped {
                    *by_reason.entry(s.reason.label()).or_default() += 1;
                }
                let mut rows: Vec<_> = by_reason.into_iter().collect();
                rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                println!("skipped {} rules:", report.skipped.len());
                println!("  {:>6}  reason", "rules");
                for (reason, n) in rows {
                    println!("  {n:>6}  {reason}");
                }
            }
            println!(
                "wrote {} (bundle version {})",
                output.display(),
                report.bundle.manifest.version
            );
            Ok(())
        }
    }
}
