//! Throughput against the number of rules: the compilable ET Open rules cut
//! to their first 10, 100, 500, 1,000 and all, each measured in wasm (fuel)
//! and natively over the same batches, drawn as an SVG with plotters.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use sandgate_matcher::{Matcher, Scratch};
use sandgate_patterns::compile::compile_rules;
use sandgate_patterns::emit::{rules_component, ModuleManifest};
use sandgate_patterns::rules::{RuleSource, Vars};
use sandgate_runtime::wit::Batch;
use sandgate_runtime::Engine;

use crate::{time_loop, view};

/// One measured point.
pub struct Point {
    pub rules: usize,
    pub wasm_pps: f64,
    pub native_pps: f64,
}

/// The `sid:` of a rule line, if it has one.
fn sid_of(line: &str) -> Option<u32> {
    let at = line.find("sid:")? + 4;
    let digits: String = line[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Measures every cut of `texts` (rule files' contents) over `batches`.
pub fn measure(
    engine: &Engine,
    texts: &[(String, String)],
    batches: &[Batch],
    secs: f64,
) -> Result<Vec<Point>> {
    let vars = Vars::suricata_defaults();
    let sources: Vec<RuleSource<'_>> = texts
        .iter()
        .map(|(file, text)| RuleSource { file, text })
        .collect();
    let all = compile_rules(&sources, &vars, "scaling", "1").set;
    let order: Vec<u32> = all.rules.iter().map(|r| r.meta.sid).collect();
    let lines: Vec<&str> = texts
        .iter()
        .flat_map(|(_, t)| t.lines())
        .filter(|l| !l.trim_start().starts_with('#') && sid_of(l).is_some())
        .collect();
    let packets: usize = batches.iter().map(|b| b.packets.len()).sum();
    let mut points = Vec::new();
    for cut in [10usize, 100, 500, 1000, usize::MAX] {
        let n = cut.min(order.len());
        let keep: std::collections::HashSet<u32> = order[..n].iter().copied().collect();
        let text: String = lines
            .iter()
            .filter(|l| sid_of(l).is_some_and(|s| keep.contains(&s)))
            .map(|l| format!("{l}\n"))
            .collect();
        let set = compile_rules(
            &[RuleSource {
                file: "cut.rules",
                text: &text,
            }],
            &vars,
            "scaling",
            "1",
        )
        .set;
        let manifest = ModuleManifest {
            name: "scaling".into(),
            version: "1".into(),
            kind: "ips".into(),
            interface: "1.0.0".into(),
            rules: set.rules.len() as u32,
            content_sha256: String::new(),
        };
        let component = rules_component(&set, &manifest)?;
        let rules = set.rules.len();
        let mut inst = engine.load("scaling", &component)?.instantiate()?;
        let (wi, we) = time_loop(secs, || {
            for b in batches {
                let _ = inst.inspect(b);
            }
            Ok(())
        })?;
        let matcher = Matcher::new(set);
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        let (ni, ne) = time_loop(secs, || {
            for b in batches {
                for p in &b.packets {
                    out.clear();
                    matcher.matches(&view(b, p), &mut scratch, &mut out);
                }
            }
            Ok(())
        })?;
        points.push(Point {
            rules,
            wasm_pps: wi as f64 * packets as f64 / we.as_secs_f64(),
            native_pps: ni as f64 * packets as f64 / ne.as_secs_f64(),
        });
        if n == order.len() {
            break;
        }
    }
    Ok(points)
}

/// Draws packets/s against rules (log x axis) for both runs.
pub fn plot(points: &[Point], path: &Path, title: &str) -> Result<()> {
    let max_rules = points.iter().map(|p| p.rules).max().unwrap_or(10).max(10) as f64;
    let max_pps = points
        .iter()
        .map(|p| p.native_pps.max(p.wasm_pps))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((5.0..max_rules * 1.5).log_scale(), 0.0..max_pps * 1.1)
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("rules (log scale)")
        .y_desc("packets/s, one core")
        .draw()
        .map_err(|e| draw(&e))?;
    for (name, color, get) in [
        (
            "native matcher",
            BLUE,
            (|p: &Point| p.native_pps) as fn(&Point) -> f64,
        ),
        ("wasm, fuel", RED, |p: &Point| p.wasm_pps),
    ] {
        let series: Vec<(f64, f64)> = points.iter().map(|p| (p.rules as f64, get(p))).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(|e| draw(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|xy| Circle::new(xy, 4, color.filled())),
            )
            .map_err(|e| draw(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
