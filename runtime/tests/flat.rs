//! Interface 1.2.0 in the runtime: flat modules load only on engines that
//! offer 1.2, see application-layer transaction entries and their buffers,
//! and cost only their own verdict when they misbehave; 1.0.0 modules never
//! see transaction entries and their hits still name the caller's packets.

use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::wit::{Action, Batch, Hit};
use sandgate_runtime::{
    AppBuffer, AppData, AppProto, Engine, EngineConfig, FaultKind, InterfaceVersion, LoadError,
    ModuleInstance, FLOW_APP_TX,
};

const HTTP_URI: u32 = 1;
const HTTP_HOST: u32 = 6;

fn engine_offering(versions: &[(u32, u32, u32)]) -> Engine {
    Engine::new(EngineConfig {
        interfaces: versions
            .iter()
            .map(|&(a, b, c)| InterfaceVersion::new(a, b, c))
            .collect(),
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn flat(body: InspectBody) -> ModuleInstance {
    let bytes = testkit::flat_component(&IpsOptions::inspect(body)).expect("component");
    Engine::new(EngineConfig::default())
        .expect("engine")
        .load("flat", &bytes)
        .expect("load")
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

/// Two packets of a flow, then the HTTP request they carry as a transaction
/// entry whose `http.uri` is `/admin` and `http.host` is `example.com`.
fn http_batch() -> (Batch, AppData) {
    let mut batch = testkit::batch(&[
        (7, b"GET /admin HTTP/1.1\r\n"),
        (7, b"Host: example.com\r\n\r\n"),
        (7, b"GET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ]);
    batch.packets[2].flow_flags |= FLOW_APP_TX;
    let base = batch.buffer.len() as u32;
    batch.buffer.extend_from_slice(b"/adminexample.com");
    let app = AppData {
        protos: vec![(2, AppProto::Http)],
        buffers: vec![
            AppBuffer {
                entry: 2,
                id: HTTP_URI,
                offset: base,
                len: 6,
            },
            AppBuffer {
                entry: 2,
                id: HTTP_HOST,
                offset: base + 6,
                len: 11,
            },
        ],
    };
    (batch, app)
}

#[test]
fn default_engine_loads_a_flat_module_that_wants_app_buffers() {
    let bytes = testkit::flat_component(&IpsOptions::default()).unwrap();
    let module = Engine::new(EngineConfig::default())
        .unwrap()
        .load("flat", &bytes)
        .unwrap();
    assert!(module.wants_app());
    assert_eq!(module.interface_version(), InterfaceVersion::new(1, 2, 0));
    assert_eq!(module.info().rules.len(), 4);
    let old = testkit::older_compatible().unwrap();
    let old = Engine::new(EngineConfig::default())
        .unwrap()
        .load("old", &old)
        .unwrap();
    assert!(!old.wants_app());
}

#[test]
fn an_engine_offering_only_1_1_refuses_a_flat_module_naming_the_interface() {
    let bytes = testkit::flat_component(&IpsOptions::default()).unwrap();
    for offered in [&[(1, 0, 0), (1, 1, 0)][..], &[(1, 0, 0)][..]] {
        let err = engine_offering(offered)
            .load("rules-1.2", &bytes)
            .expect_err("refused");
        assert!(matches!(err, LoadError::NewerExport { .. }), "{err:?}");
        let msg = err.to_string();
        let versions = offered
            .iter()
            .map(|(a, b, c)| format!("{a}.{b}.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            msg.starts_with("module rules-1.2: ")
                && msg.contains("sandgate:pattern/flat-inspector@1.2.0")
                && msg.contains("added in 1.2.0")
                && msg.contains(&format!("engine offers {versions})")),
            "{msg}"
        );
    }
}

#[test]
fn flat_module_reads_the_buffers_of_transaction_entries() {
    let mut inst = flat(InspectBody::MatchBuffer {
        id: HTTP_URI,
        needle: b"/admin".to_vec(),
        rule: 3,
    });
    let (batch, app) = http_batch();
    assert_eq!(inst.inspect_app(&batch, &app).unwrap(), vec![hit(2, 3)]);
    // The host name is a different buffer: no hit for it under `http.uri`.
    let mut host = flat(InspectBody::MatchBuffer {
        id: HTTP_URI,
        needle: b"example".to_vec(),
        rule: 0,
    });
    assert_eq!(host.inspect_app(&batch, &app).unwrap(), vec![]);
    // Without the side data the entry has no buffers.
    assert_eq!(inst.inspect(&batch).unwrap(), vec![]);
}

#[test]
fn flat_module_sees_packets_like_a_1_0_module() {
    let body = InspectBody::MatchBytes {
        needle: b"Host:".to_vec(),
        rule: 1,
    };
    let (batch, app) = http_batch();
    let mut inst = flat(body.clone());
    assert_eq!(
        inst.inspect_app(&batch, &app).unwrap(),
        vec![hit(1, 1), hit(2, 1)]
    );
    // The scratch vectors are reused: a second call answers the same.
    assert_eq!(
        inst.inspect_app(&batch, &app).unwrap(),
        vec![hit(1, 1), hit(2, 1)]
    );
}

#[test]
fn a_1_0_module_never_sees_transaction_entries_and_hits_name_the_callers_packets() {
    let bytes = testkit::ips_component(&IpsOptions::inspect(InspectBody::MatchBytes {
        needle: b"Host:".to_vec(),
        rule: 1,
    }))
    .unwrap();
    let mut inst = Engine::new(EngineConfig::default())
        .unwrap()
        .load("old", &bytes)
        .unwrap()
        .instantiate()
        .unwrap();
    let (mut batch, app) = http_batch();
    // The transaction entry first: the packet after it keeps its index.
    batch.packets.rotate_right(1);
    let app = AppData {
        protos: vec![(0, AppProto::Http)],
        buffers: app
            .buffers
            .iter()
            .map(|b| AppBuffer { entry: 0, ..*b })
            .collect(),
    };
    assert_eq!(inst.inspect_app(&batch, &app).unwrap(), vec![hit(2, 1)]);
    // Hits naming a packet past the filtered batch are bad output.
    let bytes =
        testkit::ips_component(&IpsOptions::inspect(InspectBody::Hits(vec![(2, 0)]))).unwrap();
    let mut liar = Engine::new(EngineConfig::default())
        .unwrap()
        .load("liar", &bytes)
        .unwrap()
        .instantiate()
        .unwrap();
    let fault = liar.inspect_app(&batch, &app).unwrap_err();
    assert_eq!(fault.kind, FaultKind::BadOutput, "{fault}");
}

#[test]
fn a_looping_or_trapping_flat_module_costs_only_its_verdict() {
    let (batch, app) = http_batch();
    let mut looping = flat(InspectBody::LoopForever);
    let fault = looping.inspect_app(&batch, &app).unwrap_err();
    assert_eq!(fault.kind, FaultKind::FuelExhausted, "{fault}");
    let mut trapping = flat(InspectBody::FlowCounter {
        trap_on: b"Host".to_vec(),
    });
    let fault = trapping.inspect_app(&batch, &app).unwrap_err();
    assert_eq!(fault.kind, FaultKind::Trap, "{fault}");
    assert!(trapping.is_poisoned());
    // The next call restarts the instance and works.
    let clean = testkit::batch(&[(9, b"hello")]);
    assert_eq!(trapping.inspect(&clean).unwrap(), vec![hit(0, 0)]);
    assert_eq!(trapping.inspect(&clean).unwrap(), vec![hit(0, 1)]);
    let counts = trapping.module().counters().snapshot();
    assert_eq!(counts.faults(), 1);
}
