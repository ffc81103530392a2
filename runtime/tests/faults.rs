//! A fault in a module costs at most that module's verdict: every kind of
//! fault comes back as a typed, counted [`Fault`], the instance restarts,
//! and the next call works — with the flow state intact.

use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::wit::{Action, Hit, Level};
use sandgate_runtime::{Engine, EngineConfig, FaultKind, Limits, LoadedModule, ModuleInstance};

fn load_with(limits: Limits, body: InspectBody) -> LoadedModule {
    let engine = Engine::new(EngineConfig {
        limits,
        ..EngineConfig::default()
    })
    .expect("engine");
    let bytes = testkit::ips_component(&IpsOptions::inspect(body)).expect("component");
    engine.load("under-test", &bytes).expect("load")
}

fn instance(body: InspectBody) -> ModuleInstance {
    load_with(Limits::default(), body)
        .instantiate()
        .expect("instance")
}

fn hit(packet: u32, rule: u32) -> Hit {
    Hit {
        packet,
        rule,
        action: Action::Alert,
    }
}

#[test]
fn well_behaved_module_reports_the_right_hits() {
    let mut inst = instance(InspectBody::MatchBytes {
        needle: b"evil".to_vec(),
        rule: 2,
    });
    let batch = testkit::batch(&[
        (1, b"GET /index.html"),
        (2, b"some evil payload"),
        (3, b""),
        (4, b"evi"),
        (5, b"evilevil"),
    ]);
    let hits = inst.inspect(&batch).unwrap();
    assert_eq!(hits, vec![hit(1, 2), hit(4, 2)]);
    // Again on the same instance: the heap was reset, same answer.
    assert_eq!(inst.inspect(&batch).unwrap(), vec![hit(1, 2), hit(4, 2)]);
    let counts = inst.module().counters().snapshot();
    assert_eq!(counts.calls, 2);
    assert_eq!(counts.faults(), 0);
    assert!(inst.last_fuel_used() > 0);
}

#[test]
fn infinite_loop_exhausts_fuel_and_the_next_call_works() {
    // Loops forever when the first payload starts with `L`, else hits rule 0.
    let mut inst = instance(InspectBody::Wat(
        "(if (i32.eq (i32.load8_u (i32.add (local.get $buf) (i32.load offset=72 (local.get $pkts))))
                     (i32.const 76))
           (then (loop $forever (br $forever))))
         (call $hit (i32.const 0) (i32.const 0))"
            .into(),
    ));
    let looping = testkit::batch(&[(1, b"LOOP")]);
    let fault = inst.inspect(&looping).unwrap_err();
    assert_eq!(fault.kind, FaultKind::FuelExhausted, "{fault}");
    assert!(
        fault.to_string().starts_with("module under-test: "),
        "{fault}"
    );
    assert!(inst.is_poisoned());
    let budget = inst.module().fuel_budget().for_batch(1, 4);
    assert_eq!(inst.last_fuel_used(), budget);
    // The next call re-instantiates and works.
    let hits = inst.inspect(&testkit::batch(&[(1, b"fine")])).unwrap();
    assert_eq!(hits, vec![hit(0, 0)]);
    assert!(inst.last_fuel_used() < budget);
    let counts = inst.module().counters().snapshot();
    assert_eq!(counts.fuel_exhausted, 1);
    assert_eq!(counts.reinstantiations, 1);
    assert_eq!(counts.calls, 2);
}

#[test]
fn endless_loop_on_every_call_never_stops_the_engine() {
    let mut inst = instance(InspectBody::LoopForever);
    for _ in 0..3 {
        let fault = inst.inspect(&testkit::batch(&[(1, b"abc")])).unwrap_err();
        assert_eq!(fault.kind, FaultKind::FuelExhausted);
    }
    let counts = inst.module().counters().snapshot();
    assert_eq!((counts.fuel_exhausted, counts.reinstantiations), (3, 2));
}

#[test]
fn trap_poisons_the_instance_and_the_next_call_works() {
    let mut inst = instance(InspectBody::FlowCounter {
        trap_on: b"BOOM".to_vec(),
    });
    let fault = inst
        .inspect(&testkit::batch(&[(9, b"xxBOOMxx")]))
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Trap, "{fault}");
    assert!(fault.message.contains("unreachable"), "{fault}");
    assert!(inst.is_poisoned());
    let hits = inst.inspect(&testkit::batch(&[(9, b"fine")])).unwrap();
    assert_eq!(hits, vec![hit(0, 0)]);
    let counts = inst.module().counters().snapshot();
    assert_eq!((counts.trap, counts.reinstantiations), (1, 1));
}

#[test]
fn unreachable_is_a_trap() {
    let mut inst = instance(InspectBody::Unreachable);
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::Trap, "{fault}");
}

#[test]
fn memory_growth_past_the_cap_is_a_memory_limit() {
    let module = load_with(
        Limits {
            memory_max_bytes: 4 * 1024 * 1024,
            ..Limits::default()
        },
        InspectBody::GrowMemory,
    );
    let mut inst = module.instantiate().unwrap();
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::MemoryLimit, "{fault}");
    assert!(fault.message.contains("cap is 4194304 bytes"), "{fault}");
    // Restarted with fresh memory: still faults the same way, never panics.
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::MemoryLimit);
    assert_eq!(module.counters().snapshot().memory_limit, 2);
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let mut inst = instance(InspectBody::Recurse);
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::StackOverflow, "{fault}");
}

#[test]
fn out_of_range_rule_or_packet_is_bad_output() {
    let mut inst = instance(InspectBody::Hits(vec![(0, 1), (0, 999)]));
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::BadOutput, "{fault}");
    assert!(fault.message.contains("rule 999") && fault.message.contains("declared 4"));

    let mut inst = instance(InspectBody::Hits(vec![(5, 0)]));
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::BadOutput, "{fault}");
    assert!(fault.message.contains("packet 5"), "{fault}");
    // Bad output does not poison: the instance is fine, the answer was not.
    assert!(!inst.is_poisoned());
}

#[test]
fn module_error_is_reported_with_its_text() {
    let mut inst = instance(InspectBody::Error("cannot parse".into()));
    let fault = inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::ModuleError);
    assert_eq!(fault.message, "cannot parse");
    assert_eq!(inst.module().counters().snapshot().module_error, 1);
}

#[test]
fn flow_state_survives_a_trap_induced_restart() {
    let mut inst = instance(InspectBody::FlowCounter {
        trap_on: b"BOOM".to_vec(),
    });
    let ok = |inst: &mut ModuleInstance, flow: u64| inst.inspect(&testkit::batch(&[(flow, b"x")]));
    assert_eq!(ok(&mut inst, 7).unwrap(), vec![hit(0, 0)]);
    assert_eq!(ok(&mut inst, 7).unwrap(), vec![hit(0, 1)]);
    assert_eq!(ok(&mut inst, 8).unwrap(), vec![hit(0, 0)]);
    let fault = inst.inspect(&testkit::batch(&[(7, b"BOOM")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::Trap);
    assert_eq!(ok(&mut inst, 7).unwrap(), vec![hit(0, 2)]);
    assert_eq!(inst.flow_count(), 2);
    // The host expires flow 7: its counter starts over.
    assert!(inst.forget_flow(7));
    assert!(!inst.forget_flow(7));
    assert_eq!(ok(&mut inst, 7).unwrap(), vec![hit(0, 0)]);
    assert_eq!(inst.module().counters().snapshot().reinstantiations, 1);
}

#[test]
fn flow_state_refuses_flow_zero_and_respects_the_flow_cap() {
    let module = load_with(
        Limits {
            flow_state_max_flows: 2,
            ..Limits::default()
        },
        InspectBody::FlowCounter {
            trap_on: b"BOOM".to_vec(),
        },
    );
    let mut inst = module.instantiate().unwrap();
    let batch = testkit::batch(&[
        (0, b"a"),
        (0, b"b"),
        (1, b"c"),
        (2, b"d"),
        (3, b"e"),
        (3, b"f"),
    ]);
    let hits = inst.inspect(&batch).unwrap();
    // Flow 0 and flow 3 (over the cap) get no state: their counter stays 0.
    let rules: Vec<u32> = hits.iter().map(|h| h.rule).collect();
    assert_eq!(rules, vec![0, 0, 0, 0, 0, 0]);
    let hits = inst.inspect(&batch).unwrap();
    let rules: Vec<u32> = hits.iter().map(|h| h.rule).collect();
    assert_eq!(rules, vec![0, 0, 1, 1, 0, 0]);
    assert_eq!(inst.flow_count(), 2);
}

#[test]
fn logs_are_kept_bounded_and_rate_limited() {
    let module = load_with(
        Limits {
            log_lines_per_call: 3,
            log_lines_kept: 4,
            log_line_max_bytes: 5,
            ..Limits::default()
        },
        InspectBody::Log {
            message: "hello world".into(),
            times: 10,
        },
    );
    let mut inst = module.instantiate().unwrap();
    inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap();
    inst.inspect(&testkit::batch(&[(1, b"a")])).unwrap();
    let logs = inst.take_logs();
    assert_eq!(logs.len(), 4);
    assert!(logs
        .iter()
        .all(|l| l.level == Level::Info && l.message == "hello"));
    // The warm-up call plus 2 calls, each 10 - 3 over the rate (21), plus
    // 9 kept by the rate minus 4 in the ring pushed out (5).
    assert_eq!(inst.logs_dropped(), 26);
    assert!(inst.take_logs().is_empty());
}

#[test]
fn module_estimate_raises_fuel_rates_up_to_the_caps() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let limits = Limits::default();
    let bytes = testkit::ips_component(&IpsOptions {
        fuel_per_packet: 20_000,
        fuel_per_byte: u64::MAX,
        ..IpsOptions::default()
    })
    .unwrap();
    let module = engine.load("greedy", &bytes).unwrap();
    let budget = module.fuel_budget();
    assert_eq!(budget.per_packet, 20_000);
    assert_eq!(budget.per_byte, limits.fuel_per_byte_max);
    assert_eq!(
        budget.for_batch(2, 100),
        limits.fuel_per_call_base + 2 * 20_000 + 100 * limits.fuel_per_byte_max
    );
    assert_eq!(
        budget.for_batch(usize::MAX, usize::MAX),
        limits.fuel_per_call_max
    );
}

#[test]
fn instances_of_one_module_share_counters_but_not_state() {
    let module = load_with(
        Limits::default(),
        InspectBody::FlowCounter {
            trap_on: b"BOOM".to_vec(),
        },
    );
    let mut a = module.instantiate().unwrap();
    let mut b = module.instantiate().unwrap();
    a.inspect(&testkit::batch(&[(1, b"x")])).unwrap();
    let hits = b.inspect(&testkit::batch(&[(1, b"x")])).unwrap();
    assert_eq!(hits, vec![hit(0, 0)]);
    assert_eq!(module.counters().snapshot().calls, 2);
}
