//! `sandgate-patc module build`: a custom module from Rust source (a crate
//! using `sandgate-pattern-sdk`) to a checked component, optionally wrapped
//! in a bundle with test vectors.
//!
//! Steps: `cargo build --release --target wasm32-unknown-unknown` in the
//! crate; refuse a core module importing anything outside
//! `sandgate:pattern` (WASI from std I/O, say) with the import named; wrap
//! it as a component with wit-component and a `sandgate-manifest` section;
//! load it into a default engine (the same load-time check an appliance
//! runs) and fail with the engine's reason if refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use sandgate_patterns::bundle::{sha256_hex, Bundle, ModuleEntry};
use sandgate_patterns::emit::{append_custom_section, ModuleManifest};
use sandgate_patterns::sign::{read_private_key, KeyId};
use sandgate_patterns::vectors::{expectation, show_counts};
use sandgate_runtime::{Engine, EngineConfig, LoadedModule, MANIFEST_SECTION};

use crate::{vectors, Refused};

/// The interface version SDK modules are built against.
pub const SDK_INTERFACE: &str = "1.0.0";

/// Arguments of `module build`.
pub struct BuildArgs {
    /// The module's crate (holding Cargo.toml).
    pub dir: PathBuf,
    /// Component to write; default `DIR/<package>.wasm`.
    pub output: Option<PathBuf>,
    /// Cargo target directory; default cargo's own choice.
    pub target_dir: Option<PathBuf>,
    /// Also write a bundle holding the module.
    pub bundle: Option<PathBuf>,
    /// Capture to embed in the bundle as the module's test vectors.
    pub vectors: Option<PathBuf>,
    /// Sign the bundle with this private key.
    pub sign: Option<PathBuf>,
    pub bundle_version: Option<u64>,
}

/// What one build produced.
pub struct Built {
    pub name: String,
    pub version: String,
    pub component: Vec<u8>,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    if args.bundle.is_none() && (args.vectors.is_some() || args.sign.is_some()) {
        bail!("--vectors and --sign describe a bundle: give --bundle OUT too");
    }
    let key = match &args.sign {
        Some(path) => Some(read_private_key(path)?),
        None => None,
    };
    let pcap = match &args.vectors {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading test vectors {}", path.display()))?,
        ),
        None => None,
    };
    let started = std::time::Instant::now();
    let core = cargo_build(&args.dir, args.target_dir.as_deref())?;
    let engine = Engine::new(EngineConfig::default()).context("starting a runtime")?;
    let built = componentize(&engine, &core.wasm, &core.package)?;
    let output = args
        .output
        .unwrap_or_else(|| args.dir.join(format!("{}.wasm", core.package)));
    std::fs::write(&output, &built.component)
        .with_context(|| format!("writing {}", output.display()))?;
    let module = engine.load(&built.name, &built.component)?;
    println!(
        "built module {} {} (interface {SDK_INTERFACE}, {} rule(s), {} KiB) in {:.1} s; \
         the engine's load check accepts it",
        built.name,
        built.version,
        module.info().rules.len(),
        built.component.len().div_ceil(1024),
        started.elapsed().as_secs_f64()
    );
    println!("wrote {}", output.display());
    if let Some(path) = &args.bundle {
        let mut bundle = bundle_of(&built, &module, args.bundle_version);
        if let Some(pcap) = pcap {
            let run = vectors::run(&module, &pcap)?;
            if !run.faults.is_empty() {
                bail!(
                    "module {} faulted on the test vectors ({:?}); not recording them",
                    built.name,
                    run.faults
                );
            }
            println!(
                "test vectors for module {}: expects {}",
                built.name,
                show_counts(&run.counts)
            );
            bundle.set_vectors(&built.name, pcap, expectation(&run.counts));
        }
        if let Some(key) = &key {
            bundle.sign(key);
            println!("signed with key {}", KeyId::of(&key.verifying_key()));
        }
        bundle
            .write(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} (bundle version {})",
            path.display(),
            bundle.manifest.version
        );
    }
    Ok(())
}

/// A core wasm module cargo built, and the package it came from.
struct CoreBuild {
    package: String,
    wasm: Vec<u8>,
}

/// `cargo build --release --target wasm32-unknown-unknown` in `dir`; the
/// crate's cdylib as core wasm.
fn cargo_build(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<CoreBuild> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: give the directory of a module crate \
             (`sandgate-patc new NAME` makes one)",
            dir.display()
        );
    }
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("resolving {}", manifest.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "--message-format=json-render-diagnostics",
        "--manifest-path",
    ])
    .arg(&manifest);
    if let Some(t) = target_dir {
        cmd.arg("--target-dir").arg(t);
    }
    // Flags meant for native builds must not reach the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let out = cmd
        .output()
        .with_context(|| format!("running cargo for {}", manifest.display()))?;
    if !out.status.success() {
        return Err(Refused(format!(
            "cargo build of {} failed (diagnostics above; is the target installed? \
             `rustup target add wasm32-unknown-unknown`)",
            manifest.display()
        ))
        .into());
    }
    let mut found = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same_manifest = msg["manifest_path"]
            .as_str()
            .is_some_and(|p| Path::new(p) == manifest);
        let cdylib = msg["target"]["crate_types"]
            .as_array()
            .is_some_and(|k| k.iter().any(|t| t == "cdylib"));
        if !same_manifest || !cdylib {
            continue;
        }
        let wasm = msg["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"));
        let package = msg["target"]["name"].as_str().unwrap_or("module");
        if let Some(w) = wasm {
            found = Some((package.replace('_', "-"), PathBuf::from(w)));
        }
    }
    let Some((package, path)) = found else {
        bail!(
            "cargo built no cdylib .wasm for {}: the module's Cargo.toml needs \
             `[lib] crate-type = [\"cdylib\"]`",
            manifest.display()
        );
    };
    let wasm = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(CoreBuild { package, wasm })
}

/// Refuse a core module that imports anything but the component-model
/// lowerings of `sandgate:pattern` (WASI, env functions): the engine gives
/// modules no ambient capability, so such a module could never load.
pub fn check_core_imports(name: &str, core: &[u8]) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(core) {
        let payload = payload.with_context(|| format!("module {name}: malformed wasm"))?;
        if let wasmparser::Payload::ImportSection(reader) = payload {
            for import in reader.into_imports() {
                let import =
                    import.with_context(|| format!("module {name}: malformed import section"))?;
                let allowed =
                    import.module.starts_with("sandgate:pattern/") || import.module == "$root";
                if !allowed {
                    bad.push(format!("{}::{}", import.module, import.name));
                }
            }
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(Refused(format!(
        "module {name} imports {}; a Sandgate module may import only \
         sandgate:pattern/log and sandgate:pattern/flow-state (no WASI, no env): \
         build for wasm32-unknown-unknown and do not use std I/O, clocks or files",
        bad.join(", ")
    ))
    .into())
}

/// Core wasm (with wit-bindgen's component-type section) to a component
/// with a manifest, checked by `engine`.
pub fn componentize(engine: &Engine, core: &[u8], package: &str) -> anyhow::Result<Built> {
    check_core_imports(package, core)?;
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .and_then(|mut e| e.encode())
        .map_err(|e| anyhow::anyhow!("module {package}: making a component: {e:#}"))?;
    let module = engine
        .load(package, &component)
        .map_err(|e| Refused(format!("the engine refuses the module: {e}")))?;
    let info = module.info();
    let manifest = ModuleManifest {
        name: info.name.clone(),
        version: info.version.clone(),
        kind: "ips".to_string(),
        interface: SDK_INTERFACE.to_string(),
        rules: u32::try_from(info.rules.len()).unwrap_or(u32::MAX),
        content_sha256: sha256_hex(core),
    };
    let json = serde_json::to_vec(&manifest).context("serialising the module manifest")?;
    let mut component = component;
    append_custom_section(&mut component, MANIFEST_SECTION, &json);
    Ok(Built {
        name: info.name.clone(),
        version: info.version.clone(),
        component,
    })
}

fn bundle_of(built: &Built, module: &LoadedModule, version: Option<u64>) -> Bundle {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let entry = ModuleEntry {
        id: built.name.clone(),
        version: built.version.clone(),
        kind: "ips".to_string(),
        interface: SDK_INTERFACE.to_string(),
        rules: u32::try_from(module.info().rules.len()).unwrap_or(u32::MAX),
        sha256: String::new(),
        offset: 0,
        len: 0,
    };
    Bundle::new(
        version.unwrap_or(created),
        created,
        vec![(entry, built.component.clone())],
    )
}
