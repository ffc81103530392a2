//! The three metering modes: fuel (default), epoch deadline, none. A module
//! that loops forever is cut by both bounded modes and the instance keeps
//! working; an ordinary module gives the same hits under all three.

use std::time::{Duration, Instant};

use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::{Engine, EngineConfig, FaultKind, Limits, Metering, ModuleInstance};

fn instance(metering: Metering, limits: Limits, body: InspectBody) -> ModuleInstance {
    let engine = Engine::new(EngineConfig {
        metering,
        limits,
        ..EngineConfig::default()
    })
    .expect("engine");
    let bytes = testkit::ips_component(&IpsOptions::inspect(body)).expect("component");
    engine
        .load("under-test", &bytes)
        .expect("load")
        .instantiate()
        .expect("instance")
}

fn matcher() -> InspectBody {
    InspectBody::MatchBytes {
        needle: b"evil".to_vec(),
        rule: 0,
    }
}

#[test]
fn every_mode_gives_the_same_hits() {
    let batch = testkit::batch(&[(1, b"GET /"), (2, b"so evil"), (3, b"evil")]);
    for mode in [
        Metering::Fuel,
        Metering::Epoch { tick_us: 1000 },
        Metering::Unmetered,
    ] {
        let mut inst = instance(mode, Limits::default(), matcher());
        let hits = inst.inspect(&batch).expect("inspect");
        let packets: Vec<u32> = hits.iter().map(|h| h.packet).collect();
        assert_eq!(packets, vec![1, 2], "{mode:?}");
    }
}

#[test]
fn epoch_deadline_cuts_an_endless_loop_and_the_next_call_works() {
    // 20 ms per call at most (20,000,000 units ≈ 20 ms of wall clock), and
    // 50 ms for the warm-up call each new instance gets (it loops too).
    let limits = Limits {
        fuel_per_call_max: 20_000_000,
        fuel_warmup: 50_000_000,
        ..Limits::default()
    };
    let mut looping = instance(
        Metering::Epoch { tick_us: 1000 },
        limits.clone(),
        InspectBody::LoopForever,
    );
    let started = Instant::now();
    for _ in 0..3 {
        let fault = looping
            .inspect(&testkit::batch(&[(1, b"abc")]))
            .unwrap_err();
        assert_eq!(fault.kind, FaultKind::FuelExhausted, "{fault}");
        assert!(fault.message.contains("interrupt"), "{fault}");
    }
    // Three cut calls and two warm-ups, each at most ~50 ms (+ a tick): far
    // below 10 s even on a busy machine; this bounds a hang, it is not a
    // speed measurement.
    assert!(started.elapsed() < Duration::from_secs(10));
    let counts = looping.module().counters().snapshot();
    assert_eq!(counts.fuel_exhausted, 3);

    let mut fine = instance(Metering::Epoch { tick_us: 1000 }, limits, matcher());
    assert_eq!(
        fine.inspect(&testkit::batch(&[(1, b"evil")]))
            .expect("inspect")
            .len(),
        1
    );
}

#[test]
fn epoch_config_round_trips_through_yaml_names() {
    let cfg: EngineConfig =
        serde_json::from_str(r#"{"metering": {"epoch": {"tick_us": 500}}}"#).expect("parse");
    assert_eq!(cfg.metering, Metering::Epoch { tick_us: 500 });
    let cfg: EngineConfig = serde_json::from_str(r#"{"metering": "fuel"}"#).expect("parse");
    assert_eq!(cfg.metering, Metering::Fuel);
}
