//! The artifact cache keeps a module's `describe` answer beside its compiled
//! code: a second load neither compiles nor runs module code, yet yields the
//! same module as a fresh load; a damaged, truncated or foreign answer file
//! is recomputed, never trusted, and the load check still runs on the
//! component bytes.

use std::path::{Path, PathBuf};

use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::{
    ArtifactCache, CacheOutcome, DescribeOutcome, Engine, EngineConfig, InterfaceVersion, Limits,
    LoadError, LoadedModule,
};

/// A fresh cache directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "sandgate-cache-{tag}-{}-{nanos}",
            std::process::id()
        ));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("default engine")
}

/// A module with rules, its own fuel estimates, a manifest and a matching
/// `inspect`.
fn component(rules: u32) -> Vec<u8> {
    testkit::ips_component(&IpsOptions {
        rules,
        fuel_per_packet: 30_000,
        fuel_per_byte: 90,
        manifest: Some(br#"{"bundle":"cache-test"}"#.to_vec()),
        inspect: InspectBody::MatchBytes {
            needle: b"attack".to_vec(),
            rule: 2,
        },
        ..IpsOptions::default()
    })
    .expect("testkit component")
}

fn describe_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "describe"))
        .collect();
    files.sort();
    files
}

fn load(cache: &ArtifactCache, engine: &Engine, bytes: &[u8]) -> (LoadedModule, CacheOutcome) {
    cache
        .load(engine, "m", bytes)
        .expect("load through the cache")
}

/// Everything a host can observe of a loaded module, bar how it was loaded.
fn assert_same_module(a: &LoadedModule, b: &LoadedModule) {
    assert_eq!(a.info(), b.info(), "describe answer");
    assert_eq!(a.fuel_budget(), b.fuel_budget(), "fuel budget");
    assert_eq!(a.load_logs(), b.load_logs(), "load logs");
    assert_eq!(a.interface_version(), b.interface_version());
    assert_eq!(a.kind(), b.kind());
    assert_eq!(a.wants_app(), b.wants_app());
    assert_eq!(a.imports(), b.imports());
    assert_eq!(a.exports(), b.exports());
    assert_eq!(a.manifest(), b.manifest());
}

/// The sids a module reports for one packet with and one without the needle.
fn sids_hit(m: &LoadedModule) -> Vec<u32> {
    let batch = testkit::batch(&[(1, b"an attack here"), (2, b"benign")]);
    let hits = m
        .instantiate()
        .expect("instance")
        .inspect(&batch)
        .expect("inspect");
    hits.iter()
        .map(|h| m.info().rules[h.rule as usize].sid)
        .collect()
}

#[test]
fn a_second_load_skips_describe_and_equals_a_fresh_load() {
    let dir = TempDir::new("hit");
    let engine = engine();
    let bytes = component(40);
    let fresh = engine.load("m", &bytes).expect("fresh load");
    assert_eq!(fresh.describe_outcome(), DescribeOutcome::Called);

    let cache = ArtifactCache::new(&dir.0);
    let (first, outcome) = load(&cache, &engine, &bytes);
    assert_eq!(outcome, CacheOutcome::Compiled);
    assert_eq!(first.describe_outcome(), DescribeOutcome::Called);
    assert_eq!(describe_files(&dir.0).len(), 1, "the answer is kept");

    let (second, outcome) = load(&cache, &engine, &bytes);
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(second.describe_outcome(), DescribeOutcome::Cached);
    assert_same_module(&second, &fresh);
    assert_eq!(second.info().rules.len(), 40);
    assert_eq!(second.fuel_budget().per_packet, 30_000);
    assert_eq!(second.fuel_budget().per_byte, 90);
    assert_eq!(sids_hit(&second), vec![1002], "the cached module runs");

    // Another engine with the same configuration reuses it too.
    let (third, _) = load(&cache, &self::engine(), &bytes);
    assert_eq!(third.describe_outcome(), DescribeOutcome::Cached);
    assert_same_module(&third, &fresh);
}

#[test]
fn a_damaged_or_truncated_describe_file_is_recomputed() {
    let dir = TempDir::new("damaged");
    let engine = engine();
    let bytes = component(12);
    let cache = ArtifactCache::new(&dir.0);
    let (fresh, _) = load(&cache, &engine, &bytes);
    let [file] = describe_files(&dir.0)
        .try_into()
        .expect("one describe file");
    let good = std::fs::read(&file).expect("describe file");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x20;
    let mut bad_format = good.clone();
    bad_format[7] ^= 0xff;
    let damages: [(&str, Vec<u8>); 6] = [
        ("empty", Vec::new()),
        ("header only", good[..40].to_vec()),
        ("truncated payload", good[..good.len() / 2].to_vec()),
        ("one payload bit flipped", flipped),
        ("another format", bad_format),
        ("garbage", b"not a describe answer".repeat(50)),
    ];
    for (what, damaged) in damages {
        std::fs::write(&file, &damaged).expect("damage");
        let (m, outcome) = load(&cache, &engine, &bytes);
        assert_eq!(outcome, CacheOutcome::Hit, "{what}: the artifact is fine");
        assert_eq!(m.describe_outcome(), DescribeOutcome::Called, "{what}");
        assert_same_module(&m, &fresh);
        assert_eq!(
            std::fs::read(&file).expect("rewritten"),
            good,
            "{what}: the recomputed answer replaces the damaged file"
        );
        let (m, _) = load(&cache, &engine, &bytes);
        assert_eq!(m.describe_outcome(), DescribeOutcome::Cached, "{what}");
    }

    // A removed file is recomputed the same way.
    std::fs::remove_file(&file).expect("remove");
    let (m, _) = load(&cache, &engine, &bytes);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Called);
    assert_same_module(&m, &fresh);
}

#[test]
fn a_describe_file_of_another_component_is_not_accepted() {
    let dir = TempDir::new("swap");
    let engine = engine();
    let (a, b) = (component(3), component(9));
    let cache = ArtifactCache::new(&dir.0);
    let (fresh_a, _) = load(&cache, &engine, &a);
    let files_a = describe_files(&dir.0);
    let (fresh_b, _) = load(&cache, &engine, &b);
    let files = describe_files(&dir.0);
    assert_eq!(files.len(), 2);
    let file_a = files_a[0].clone();
    let file_b = files
        .iter()
        .find(|f| **f != file_a)
        .expect("b's file")
        .clone();

    let (answer_a, answer_b) = (
        std::fs::read(&file_a).expect("a"),
        std::fs::read(&file_b).expect("b"),
    );
    std::fs::write(&file_a, &answer_b).expect("swap");
    std::fs::write(&file_b, &answer_a).expect("swap");

    let (m, _) = load(&cache, &engine, &a);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Called);
    assert_eq!(m.info().rules.len(), 3, "a's own rules, not b's 9");
    assert_same_module(&m, &fresh_a);
    let (m, _) = load(&cache, &engine, &b);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Called);
    assert_same_module(&m, &fresh_b);
}

#[test]
fn an_answer_is_reused_only_under_the_same_interfaces_and_limits() {
    let dir = TempDir::new("limits");
    let bytes = component(5);
    let cache = ArtifactCache::new(&dir.0);
    load(&cache, &engine(), &bytes);

    // Other offered versions may pick another export: describe runs again.
    let only_1_0 = Engine::new(EngineConfig {
        interfaces: vec![InterfaceVersion::new(1, 0, 0)],
        ..EngineConfig::default()
    })
    .expect("engine");
    let (m, _) = load(&cache, &only_1_0, &bytes);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Called);
    let (m, _) = load(&cache, &only_1_0, &bytes);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Cached);

    // Other caps, other answer: describe runs again under them.
    let raised = Engine::new(EngineConfig {
        limits: Limits {
            fuel_per_packet: 40_000,
            ..Limits::default()
        },
        ..EngineConfig::default()
    })
    .expect("engine");
    let (m, _) = load(&cache, &raised, &bytes);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Called);
    assert_eq!(m.fuel_budget().per_packet, 40_000);

    // A memory cap the module cannot live with refuses it, a kept answer
    // from a more generous engine notwithstanding, exactly as a fresh load.
    let starved = Engine::new(EngineConfig {
        limits: Limits {
            memory_max_bytes: 64 * 1024,
            ..Limits::default()
        },
        ..EngineConfig::default()
    })
    .expect("engine");
    let direct = starved.load("m", &bytes).expect_err("over the memory cap");
    assert!(direct.to_string().contains("memory"), "{direct}");
    let via_cache = cache
        .load(&starved, "m", &bytes)
        .expect_err("over the memory cap, cache or not");
    assert_eq!(via_cache.to_string(), direct.to_string());
}

#[test]
fn the_load_check_still_refuses_bad_components_with_a_warm_cache() {
    let dir = TempDir::new("check");
    let engine = engine();
    let cache = ArtifactCache::new(&dir.0);
    let good = component(4);
    load(&cache, &engine, &good);
    load(&cache, &engine, &good);

    let bad = [
        ("wrong major", testkit::wrong_major().expect("testkit")),
        ("wasi import", testkit::imports_wasi().expect("testkit")),
        (
            "inspector of the wrong type",
            testkit::inspector_wrong_type().expect("testkit"),
        ),
        ("core module", testkit::core_module_only().expect("testkit")),
    ];
    for (what, bytes) in bad {
        let direct = engine.load("bad", &bytes).expect_err(what).to_string();
        for _ in 0..2 {
            let via_cache = cache
                .load(&engine, "bad", &bytes)
                .expect_err(what)
                .to_string();
            assert_eq!(via_cache, direct, "{what}");
        }
    }
    // A truncated copy of the good component is refused although the
    // cache holds its artifact and answer.
    let cut = &good[..good.len() - 10];
    let err = cache.load(&engine, "cut", cut).expect_err("truncated");
    assert!(matches!(err, LoadError::Malformed { .. }), "{err}");
}

#[test]
fn parallel_first_loads_of_one_module_leave_a_usable_cache() {
    let dir = TempDir::new("parallel");
    let engine = engine();
    let bytes = component(6);
    let cache = ArtifactCache::new(&dir.0);
    let fresh = engine.load("m", &bytes).expect("fresh load");
    let loaded: Vec<LoadedModule> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| load(&cache, &engine, &bytes).0))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread"))
            .collect()
    });
    for m in &loaded {
        assert_same_module(m, &fresh);
    }
    let (m, outcome) = load(&cache, &engine, &bytes);
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(m.describe_outcome(), DescribeOutcome::Cached);
    assert_same_module(&m, &fresh);
    assert_eq!(sids_hit(&m), vec![1002]);
    // Only the artifact and the answer remain: no temporary files.
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .expect("cache dir")
        .flatten()
        .filter_map(|e| {
            e.path()
                .extension()
                .map(|x| x.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert_eq!(names, ["cwasm", "describe"]);
}
