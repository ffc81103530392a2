//! The field compatibility matrix: every variant of every module, loaded
//! into a runtime configured as each field engine and run on the module's
//! test vectors there.
//!
//! A module whose every variant an engine refuses because the engine lacks
//! the module's interface altogether (an AV module's `scanner`, added in
//! 1.1.0, on a 1.0-only engine) is *not shipped* to that engine rather than
//! a gap: the engine has no AV engine to run it with, and the publish index
//! leaves the module out of that engine range's variants. Any other refusal
//! with no working variant is a gap and blocks publishing.

use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::field::{FieldEngine, FieldList, Version};
use sandgate_patterns::vectors::check;
use sandgate_runtime::{Engine, EngineConfig, InterfaceVersion, LoadError};

use crate::vectors;

/// The outcome of one variant on one engine.
pub enum Outcome {
    /// Loaded and gave the expected alerts (`None`: the module has no vectors).
    Ok(Option<u64>),
    /// The engine refused it at load time.
    Rejected(String),
    /// The engine refused it for lacking the module's interface altogether
    /// (e.g. no `scanner`): the module is not shipped to that engine.
    NotShipped(String),
    /// Loaded, but the vectors gave other alerts.
    WrongVerdict(String),
}

impl Outcome {
    fn works(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    fn show(&self) -> String {
        match self {
            Outcome::Ok(Some(n)) => format!("ok ({n} alerts as expected)"),
            Outcome::Ok(None) => "ok (loads; no test vectors)".into(),
            Outcome::Rejected(why) => format!("rejected ({why})"),
            Outcome::NotShipped(why) => {
                format!("rejected ({why}); not shipped to this engine")
            }
            Outcome::WrongVerdict(why) => format!("wrong verdict ({why})"),
        }
    }
}

/// One row: engine × module × variant.
pub struct Row {
    pub engine: usize,
    pub module: String,
    pub interface: String,
    pub outcome: Outcome,
}

/// The whole matrix.
pub struct Matrix {
    pub engines: Vec<FieldEngine>,
    pub rows: Vec<Row>,
    pub modules: Vec<String>,
}

impl Matrix {
    /// For engine `engine`, the working variant (newest interface) of `module`.
    pub fn working(&self, engine: usize, module: &str) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.engine == engine && r.module == module && r.outcome.works())
            .max_by_key(|r| r.interface.parse::<Version>().ok())
    }

    /// Whether `module` goes to engine `engine`: false when every variant
    /// was refused as [`Outcome::NotShipped`].
    pub fn shipped(&self, engine: usize, module: &str) -> bool {
        !self
            .rows
            .iter()
            .filter(|r| r.engine == engine && r.module == module)
            .all(|r| matches!(r.outcome, Outcome::NotShipped(_)))
    }

    /// `(engine label, module)` pairs not shipped to that engine.
    pub fn not_shipped(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, e) in self.engines.iter().enumerate() {
            for m in &self.modules {
                if !self.shipped(i, m) {
                    out.push((e.label(), m.clone()));
                }
            }
        }
        out
    }

    /// `(engine label, module)` pairs shipped to the engine with no working
    /// variant.
    pub fn gaps(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, e) in self.engines.iter().enumerate() {
            for m in &self.modules {
                if self.shipped(i, m) && self.working(i, m).is_none() {
                    out.push((e.label(), m.clone()));
                }
            }
        }
        out
    }

    /// The table, one line per row, columns aligned.
    pub fn table(&self) -> String {
        let mut lines = vec![[
            "engine".to_string(),
            "interfaces".into(),
            "module".into(),
            "variant".into(),
            "result".into(),
        ]];
        for r in &self.rows {
            let e = &self.engines[r.engine];
            lines.push([
                e.label(),
                e.interfaces.join(","),
                r.module.clone(),
                r.interface.clone(),
                r.outcome.show(),
            ]);
        }
        let width = |c: usize| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        };
        let w: Vec<usize> = (0..4).map(width).collect();
        let mut out = String::new();
        for l in &lines {
            out.push_str(&format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
                l[0],
                l[1],
                l[2],
                l[3],
                l[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            ));
        }
        out
    }
}

/// Run the matrix of `bundle` against `field`.
pub fn run(bundle: &Bundle, field: &FieldList) -> anyhow::Result<Matrix> {
    let modules: Vec<String> = bundle.module_ids().into_iter().map(String::from).collect();
    let steps = field.engines.len() * bundle.manifest.modules.len();
    let progress = crate::progress::bar(steps as u64, "matrix");
    let mut rows = Vec::new();
    for (i, fe) in field.engines.iter().enumerate() {
        let interfaces = fe
            .interfaces
            .iter()
            .map(|v| v.parse::<InterfaceVersion>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("field engine `{}`: {e}", fe.label()))?;
        let engine = Engine::new(EngineConfig {
            interfaces,
            ..EngineConfig::default()
        });
        for id in &modules {
            for (entry, bytes) in bundle.variants(id) {
                progress.set_message(format!(
                    "{}: module {id} variant {}",
                    fe.label(),
                    entry.interface
                ));
                let outcome = match &engine {
                    Err(e) => Outcome::Rejected(format!("engine cannot be configured: {e}")),
                    Ok(engine) => try_variant(engine, bundle, id, bytes)?,
                };
                rows.push(Row {
                    engine: i,
                    module: id.clone(),
                    interface: entry.interface.clone(),
                    outcome,
                });
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    Ok(Matrix {
        engines: field.engines.clone(),
        rows,
        modules,
    })
}

fn try_variant(
    engine: &Engine,
    bundle: &Bundle,
    id: &str,
    bytes: &[u8],
) -> anyhow::Result<Outcome> {
    let module = match engine.load(id, bytes) {
        Ok(m) => m,
        Err(e @ LoadError::NewerExport { .. }) => return Ok(Outcome::NotShipped(e.to_string())),
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let Some((vectors, pcap)) = bundle.vectors_for(id) else {
        return Ok(Outcome::Ok(None));
    };
    let run = vectors::run(&module, pcap)?;
    Ok(match check(&vectors.expect, &run.counts) {
        Ok(()) => Outcome::Ok(Some(run.counts.values().sum())),
        Err(m) if run.faults.is_empty() => Outcome::WrongVerdict(m.to_string()),
        Err(m) => {
            let faults: Vec<String> = run.faults.iter().map(|(k, n)| format!("{k}×{n}")).collect();
            Outcome::WrongVerdict(format!("{m}; faults: {}", faults.join(", ")))
        }
    })
}
