//! `sandgate-patc test`: replay a capture through one module (a component
//! or every module of a bundle) exactly as the appliance does — flows,
//! reassembly, thresholds — print the alerts, and compare the count per sid
//! with an expectation file.
//!
//! The expectation file has one `SID COUNT` line per sid that must alert;
//! `#` starts a comment, blank lines are ignored, sids not listed must not
//! alert. `--write-expect` records the current alerts in that format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sandgate_host::replay::{load_bundle, replay, ReplayOptions};
use sandgate_patterns::bundle::{Bundle, BUNDLE_MAGIC};
use sandgate_runtime::{Engine, EngineConfig, LoadedModule};

use crate::Refused;

/// Arguments of `test`.
pub struct Args {
    pub module: PathBuf,
    pub pcap: PathBuf,
    pub expect: Option<PathBuf>,
    pub write_expect: bool,
}

/// Alert count and msg per sid.
type Seen = BTreeMap<u32, (u64, String)>;

pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = Engine::new(EngineConfig::default()).context("starting a runtime")?;
    let modules = load(&engine, &args.module)?;
    let mut seen: Seen = BTreeMap::new();
    let mut lines = Vec::new();
    let (stats, inspected) = replay(&modules, &args.pcap, &ReplayOptions::default(), &mut |a| {
        let e = seen
            .entry(a.signature_id)
            .or_insert((0, a.signature.clone()));
        e.0 += 1;
        lines.push(format!(
            "packet {:>6}  sid {:>10}  {}",
            a.pcap_cnt, a.signature_id, a.signature
        ));
        Ok(())
    })
    .map_err(|(_, e)| anyhow::anyhow!("replaying {}: {e}", args.pcap.display()))?;
    for l in &lines {
        println!("{l}");
    }
    println!(
        "{} packet(s), {} alert(s) from {}",
        stats.packets,
        stats.alerts,
        args.pcap.display()
    );
    for (sid, (n, msg)) in &seen {
        println!("  sid {sid:>10}  ×{n:<6} {msg}");
    }
    let faults: Vec<String> = inspected
        .iter()
        .flat_map(|i| i.faults.iter())
        .map(|(kind, n)| format!("{kind} ×{n}"))
        .collect();
    if !faults.is_empty() {
        return Err(Refused(format!(
            "the module faulted while inspecting: {} (its failure policy decided those batches)",
            faults.join(", ")
        ))
        .into());
    }
    let Some(expect) = &args.expect else {
        return Ok(());
    };
    if args.write_expect {
        std::fs::write(expect, render(&seen))
            .with_context(|| format!("writing {}", expect.display()))?;
        println!("wrote {}", expect.display());
        return Ok(());
    }
    let want = read_expect(expect)?;
    let diff = diff(&want, &seen);
    if diff.is_empty() {
        println!("alerts match {}", expect.display());
        return Ok(());
    }
    Err(Refused(format!("alerts differ from {}:\n{diff}", expect.display())).into())
}

/// A component, or every module of a bundle this engine can load.
fn load(engine: &Engine, path: &Path) -> anyhow::Result<Vec<LoadedModule>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(BUNDLE_MAGIC) {
        let bundle = Bundle::from_bytes(&bytes, &path.display().to_string())?;
        let loaded = load_bundle(engine, &bundle);
        if let Some(e) = loaded.refused.first() {
            return Err(Refused(format!("the engine refuses a module of the bundle: {e}")).into());
        }
        return Ok(loaded.modules);
    }
    let name = path.file_stem().map_or_else(
        || "module".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let module = engine
        .load(&name, &bytes)
        .map_err(|e| Refused(format!("the engine refuses the module: {e}")))?;
    Ok(vec![module])
}

/// `SID COUNT  # msg` lines, in sid order.
fn render(seen: &Seen) -> String {
    let mut s = String::from("# sid count  (expected alerts; sids not listed must not alert)\n");
    for (sid, (n, msg)) in seen {
        let _ = writeln!(s, "{sid} {n}  # {msg}");
    }
    s
}

/// Parse an expectation file; an error names the file and line.
pub fn read_expect(path: &Path) -> anyhow::Result<BTreeMap<u32, u64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_expect(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The `SID COUNT` lines of `text`.
pub fn parse_expect(text: &str) -> Result<BTreeMap<u32, u64>, String> {
    let mut want = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(sid), Some(count), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "line {}: expected `SID COUNT`, got `{line}`",
                i + 1
            ));
        };
        let sid: u32 = sid
            .parse()
            .map_err(|_| format!("line {}: `{sid}` is not a sid", i + 1))?;
        let count: u64 = count
            .parse()
            .map_err(|_| format!("line {}: `{count}` is not a count", i + 1))?;
        if want.insert(sid, count).is_some() {
            return Err(format!("line {}: sid {sid} listed twice", i + 1));
        }
    }
    Ok(want)
}

/// One line per sid whose count differs; empty when everything matches.
fn diff(want: &BTreeMap<u32, u64>, seen: &Seen) -> String {
    let mut out = String::new();
    let sids: std::collections::BTreeSet<u32> = want.keys().chain(seen.keys()).copied().collect();
    for sid in sids {
        let w = want.get(&sid).copied().unwrap_or(0);
        let (g, msg) = seen.get(&sid).map_or((0, ""), |(n, m)| (*n, m.as_str()));
        if w != g {
            let _ = writeln!(out, "  sid {sid}: expected {w}, got {g}  {msg}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectation_lines_parse_and_bad_lines_name_the_line() {
        let want = parse_expect("# header\n9100001 3  # msg\n\n9100003 1\n").unwrap();
        assert_eq!(want, BTreeMap::from([(9_100_001, 3), (9_100_003, 1)]));
        let e = parse_expect("1 2\n1 x\n").unwrap_err();
        assert_eq!(e, "line 2: `x` is not a count");
        let e = parse_expect("1 2 3\n").unwrap_err();
        assert!(e.starts_with("line 1: expected `SID COUNT`"), "{e}");
        let e = parse_expect("5 1\n5 2\n").unwrap_err();
        assert_eq!(e, "line 2: sid 5 listed twice");
    }

    #[test]
    fn the_diff_lists_missing_extra_and_wrong_counts() {
        let want = BTreeMap::from([(1, 2), (2, 1)]);
        let seen: Seen = BTreeMap::from([(1, (2, "a".into())), (3, (4, "c".into()))]);
        assert_eq!(
            diff(&want, &seen),
            "  sid 2: expected 1, got 0  \n  sid 3: expected 0, got 4  c\n"
        );
        let same: Seen = BTreeMap::from([(1, (2, "a".into())), (2, (1, "b".into()))]);
        assert_eq!(diff(&want, &same), "");
        assert_eq!(parse_expect(&render(&same)).unwrap(), want);
    }
}
