//! Arbitrary bytes → `Engine::load`: refused with a `LoadError` or loaded,
//! never a panic. A small `max_module_bytes` keeps compiles cheap.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandgate_runtime::{Engine, EngineConfig, Limits, PoolConfig};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig {
            limits: Limits {
                max_module_bytes: 64 * 1024,
                memory_max_bytes: 1 << 20,
                fuel_describe: 10_000_000,
                fuel_warmup: 10_000_000,
                ..Limits::default()
            },
            pool: PoolConfig {
                enabled: false,
                ..PoolConfig::default()
            },
            ..EngineConfig::default()
        };
        match Engine::new(config) {
            Ok(e) => e,
            Err(e) => panic!("engine: {e}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(module) = engine().load("fuzz", data) {
        if let Ok(mut instance) = module.instantiate() {
            let batch = sandgate_runtime::wit::Batch {
                buffer: b"GET / HTTP/1.1\r\n".to_vec(),
                packets: Vec::new(),
            };
            let _ = instance.inspect(&batch);
        }
    }
});
