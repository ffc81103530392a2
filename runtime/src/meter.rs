//! How a call's CPU time is bounded ([`Metering`]): wasmtime fuel (the
//! default), an epoch deadline, or nothing. Budgets are stated in fuel units
//! everywhere (about 1 ns of wasm each); the epoch mode turns a budget into a
//! wall-clock deadline of that many nanoseconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::config::Metering;
use crate::host::HostState;

/// A store armed for one call: what it was given and when it started, so
/// the cost can be read back afterwards.
pub(crate) struct Armed {
    given: u64,
    started: Instant,
    fuel: bool,
}

/// Gives `store` a budget of `budget` fuel units for the next call.
pub(crate) fn arm(metering: &Metering, store: &mut Store<HostState>, budget: u64) -> Armed {
    match metering {
        Metering::Fuel => {
            // Cannot fail: fuel is enabled in engines built with this mode.
            let _ = store.set_fuel(budget);
        }
        Metering::Epoch { tick_us } => store.set_epoch_deadline(deadline_ticks(budget, *tick_us)),
        Metering::Unmetered => {}
    }
    Armed {
        given: budget,
        started: Instant::now(),
        fuel: matches!(metering, Metering::Fuel),
    }
}

impl Armed {
    /// Fuel the call consumed; without fuel, the elapsed time in
    /// nanoseconds (the unit budgets are stated in), capped at the budget.
    pub(crate) fn used(&self, store: &Store<HostState>) -> u64 {
        if self.fuel {
            self.given.saturating_sub(store.get_fuel().unwrap_or(0))
        } else {
            let ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            ns.min(self.given)
        }
    }
}

/// Ticks until a deadline of `budget` ns, plus one: the next tick may come
/// right after arming, so one tick less could cut a call at once.
fn deadline_ticks(budget: u64, tick_us: u64) -> u64 {
    let tick_ns = tick_us.max(1).saturating_mul(1000);
    budget.div_ceil(tick_ns).saturating_add(1)
}

/// The thread that advances the engine's epoch every tick, for as long as
/// the engine lives.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub(crate) fn start(engine: &wasmtime::Engine, tick_us: u64) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let engine = engine.clone();
        let tick = Duration::from_micros(tick_us.max(1));
        std::thread::Builder::new()
            .name("sandgate-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_and_adds_a_tick() {
        assert_eq!(deadline_ticks(1, 1000), 2);
        assert_eq!(deadline_ticks(1_000_000, 1000), 2);
        assert_eq!(deadline_ticks(1_000_001, 1000), 3);
        // A zero tick counts as 1 µs; the largest budget does not overflow.
        assert_eq!(deadline_ticks(u64::MAX, 0), u64::MAX.div_ceil(1000) + 1);
    }
}
