//! Windowed statistics: what happened in the last N seconds, inside the process.
//!
//! Counters and histogram buckets are cumulative already, so a window needs no second
//! recording path: a *tick* walks the registry (as a scrape does, custom collectors
//! included), takes each series' change since the tick before, and writes it into one slot
//! of a ring. Recording pays nothing for it. Two rings, by default:
//!
//! | ring | step | slots | span |
//! |---|---|---|---|
//! | fine | 1 s | 300 | 5 minutes |
//! | coarse | 10 s | 360 | 1 hour |
//!
//! A window of up to the fine ring's span is answered from the fine ring, longer ones from
//! the coarse ring, so a window's edges are exact to one step of the ring that answers it.
//! Over any window and any selection of series (a family name and some of its labels):
//! count, sum, average, rate, min and max, and percentiles from the histogram's bucket
//! counts ([`Stats`]); per route and per `#[instrumented]` function, the four golden signals
//! ([`Window::routes`], [`Window::functions`]). The live page of the adapters draws these
//! ([`crate::http::AdapterOptions::live`]).
//!
//! ```
//! use std::time::Duration;
//! use vitals_core::{window::WindowConfig, Registry};
//!
//! let registry = Registry::new();
//! let jobs = registry.counter("jobs", "Jobs run.").register()?;
//! let windows = registry.enable_windows(WindowConfig::default())?;
//! // A real service calls `windows.spawn_ticker()`; here the ticks are driven by hand.
//! windows.tick_at(Duration::from_secs(0)); // the baseline
//! for second in 1..=10 {
//!     jobs.inc_by(3);
//!     windows.tick_at(Duration::from_secs(second));
//! }
//! let last_minute = registry.window(Duration::from_secs(60))?;
//! let stats = last_minute.stats("jobs_total", &[]);
//! assert_eq!(stats.count(), 30.0);
//! assert_eq!(stats.covered(), Duration::from_secs(10)); // the rings hold 10 s so far
//! assert_eq!(stats.rate(), Some(3.0));
//! # Ok::<(), vitals_core::Error>(())
//! ```
//!
//! # Ticks
//!
//! [`Windows::spawn_ticker`] starts one thread, `vitals-windows`, that ticks every fine step
//! and stops when the registry is dropped. The first tick takes a baseline: what was counted
//! before it is in no window. A series that appears later counts whole from its first tick.
//! A value below the one before (a process restarted, a series removed and recorded again)
//! counts as a reset, as Prometheus's `rate` counts it: the new value is the change. A
//! series the walk no longer reports has empty slots, and is forgotten once both rings have
//! moved past it.
//!
//! # Memory and cost
//!
//! Each tracked series keeps one slot per ring slot: 8 bytes for a counter or gauge, 8
//! bytes plus 4 per bucket for a histogram (`+Inf` included), 16 more with extremes. With
//! the default rings (660 slots): about 5.3 KB per counter or gauge series, 45 KB per
//! histogram series with the default 14 bounds. At most
//! [`max_series`](WindowConfig::max_series) series are tracked (1,000 by default); the
//! ones past it are counted ([`Windows::untracked_series`]) and left out.
//! [`Windows::memory_bytes`] says what the rings take now. A tick costs about what a scrape
//! without encoding costs; BENCHMARKS.md has the figures.
//!
//! Client-side windows and percentiles cannot be added up across instances: they are for
//! people looking at one process, and for its live page. Dashboards and alerts should use
//! Prometheus's `rate()` and `histogram_quantile()` over the scraped series.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::kind::MetricKind;
use crate::registry::{Registry, WeakRegistry};

mod live;
mod signals;
mod stats;
mod store;
#[cfg(test)]
mod tests;

pub use signals::{FunctionSignals, RouteSignals, Signals};
pub use stats::Stats;

use stats::Span;
use store::State;

/// The rings of the windowed statistics and how many series they track. Defaults: a fine
/// ring of 1 s × 300, a coarse ring of 10 s × 360, at most 1,000 series, every family.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct WindowConfig {
    pub(crate) fine_step: Duration,
    pub(crate) fine_slots: usize,
    pub(crate) coarse_step: Duration,
    pub(crate) coarse_slots: usize,
    pub(crate) max_series: usize,
    pub(crate) only: Option<Vec<Box<str>>>,
}

/// The most slots a ring may have.
pub const MAX_SLOTS: usize = 100_000;

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            fine_step: Duration::from_secs(1),
            fine_slots: 300,
            coarse_step: Duration::from_secs(10),
            coarse_slots: 360,
            max_series: 1_000,
            only: None,
        }
    }
}

impl WindowConfig {
    /// The fine ring: a tick every `step`, `slots` of them kept.
    pub fn fine(mut self, step: Duration, slots: usize) -> Self {
        self.fine_step = step;
        self.fine_slots = slots;
        self
    }

    /// The coarse ring: one slot per `step`, a whole multiple of the fine step, `slots` of
    /// them kept.
    pub fn coarse(mut self, step: Duration, slots: usize) -> Self {
        self.coarse_step = step;
        self.coarse_slots = slots;
        self
    }

    /// The most series tracked at once.
    pub fn max_series(mut self, max: usize) -> Self {
        self.max_series = max;
        self
    }

    /// Tracks only the families whose names start with one of `prefixes`.
    pub fn only<S: AsRef<str>>(mut self, prefixes: impl IntoIterator<Item = S>) -> Self {
        self.only = Some(prefixes.into_iter().map(|p| p.as_ref().into()).collect());
        self
    }

    /// The longest window the rings answer.
    #[must_use]
    pub fn longest(&self) -> Duration {
        let slots = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (self.fine_step * slots(self.fine_slots)).max(self.coarse_step * slots(self.coarse_slots))
    }

    fn check(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidWindow { reason });
        if self.fine_step.is_zero() || self.coarse_step.is_zero() {
            return invalid("a ring's step must be longer than zero".into());
        }
        let ratio = self.coarse_step.as_nanos() / self.fine_step.as_nanos();
        if self.coarse_step.as_nanos() % self.fine_step.as_nanos() != 0 || ratio < 1 {
            return invalid(format!(
                "the coarse step ({:?}) must be a whole multiple of the fine step ({:?})",
                self.coarse_step, self.fine_step
            ));
        }
        for (ring, slots) in [("fine", self.fine_slots), ("coarse", self.coarse_slots)] {
            if slots == 0 || slots > MAX_SLOTS {
                return invalid(format!(
                    "the {ring} ring has {slots} slots; it takes 1 to {MAX_SLOTS}"
                ));
            }
        }
        if (self.fine_slots as u128) < ratio {
            return invalid(format!(
                "the fine ring ({} slots) must hold one coarse step ({ratio} fine steps)",
                self.fine_slots
            ));
        }
        if self.max_series == 0 {
            return invalid("max_series must be at least 1".into());
        }
        Ok(())
    }
}

/// The windows' state, kept by the registry.
#[derive(Debug)]
pub(crate) struct Shared {
    config: WindowConfig,
    start: Instant,
    /// Seconds since the Unix epoch at `start`.
    start_unix: f64,
    state: Mutex<State>,
    ticker: AtomicBool,
}

impl Shared {
    pub(crate) fn new(config: WindowConfig) -> Self {
        Self {
            state: Mutex::new(State::new(&config)),
            config,
            start: Instant::now(),
            start_unix: crate::util::clock::now_seconds(),
            ticker: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The windowed statistics of a registry: made by [`Registry::enable_windows`], ticked by
/// [`spawn_ticker`](Self::spawn_ticker) or by hand, read through [`last`](Self::last). A
/// cheap handle.
#[derive(Debug, Clone)]
pub struct Windows {
    shared: Arc<Shared>,
    registry: Registry,
}

impl Windows {
    pub(crate) fn new(shared: Arc<Shared>, registry: Registry) -> Self {
        Self { shared, registry }
    }

    /// The options the windows were enabled with.
    pub fn config(&self) -> &WindowConfig {
        &self.shared.config
    }

    /// Takes a tick now.
    pub fn tick(&self) {
        self.tick_at(self.shared.start.elapsed());
    }

    /// Takes a tick as if `elapsed` had passed since the windows were enabled: for tests
    /// and for programs that drive the ticks from a clock of their own. A tick not later
    /// than the last one is ignored.
    ///
    /// A tick runs the registry's custom collectors, as a scrape does, while it holds the
    /// windows' lock: a collector must not read the windows from inside `collect()`.
    pub fn tick_at(&self, elapsed: Duration) {
        let mut state = self.shared.state();
        state.tick(&self.shared.config, elapsed.as_secs_f64(), |sink| {
            self.registry.visit(sink);
        });
    }

    /// Starts the thread that ticks every fine step (once per registry: later calls do
    /// nothing). It holds no reference that keeps the registry alive, and ends when the
    /// registry is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWindow`] when the operating system refuses a new thread.
    pub fn spawn_ticker(&self) -> Result<(), Error> {
        if self.shared.ticker.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let registry = self.registry.downgrade();
        let shared = Arc::downgrade(&self.shared);
        let step = self.shared.config.fine_step;
        let started = std::thread::Builder::new()
            .name("vitals-windows".into())
            .spawn(move || ticker(&registry, &shared, step));
        started.map(drop).map_err(|error| {
            self.shared.ticker.store(false, Ordering::Release);
            Error::InvalidWindow {
                reason: format!("the ticker thread could not start: {error}"),
            }
        })
    }

    /// The last `length` of the statistics.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWindow`] when `length` is zero or longer than the rings hold
    /// ([`WindowConfig::longest`]).
    pub fn last(&self, length: Duration) -> Result<Window, Error> {
        let config = &self.shared.config;
        if length.is_zero() {
            return Err(Error::InvalidWindow {
                reason: "a window must be longer than zero".into(),
            });
        }
        let fine_span = config.fine_step * u32::try_from(config.fine_slots).unwrap_or(u32::MAX);
        if length > config.longest() {
            return Err(Error::InvalidWindow {
                reason: format!(
                    "a window of {length:?} is longer than the rings hold ({:?})",
                    config.longest()
                ),
            });
        }
        Ok(Window {
            shared: Arc::clone(&self.shared),
            length,
            coarse: length > fine_span,
        })
    }

    /// How many series the rings track now.
    #[must_use]
    pub fn tracked_series(&self) -> usize {
        self.shared.state().tracked_count()
    }

    /// How many series the last tick saw but left out, [`max_series`](WindowConfig::max_series)
    /// being reached.
    #[must_use]
    pub fn untracked_series(&self) -> usize {
        self.shared.state().untracked
    }

    /// The bytes the tracked series take now: their rings, labels and keys.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.shared
            .state()
            .tracked()
            .map(store::Tracked::bytes)
            .sum()
    }

    /// The data of the live page, as JSON: the golden signals of the busiest routes and
    /// functions at every slot of the last `length` (see [`live`](crate::http::live)).
    ///
    /// # Errors
    ///
    /// As [`last`](Self::last).
    pub fn live_json(&self, length: Duration) -> Result<String, Error> {
        let window = self.last(length)?;
        let state = self.shared.state();
        let span = Span::of(&state, window.length, window.coarse);
        Ok(live::json(&state, &span, self.shared.start_unix))
    }
}

fn ticker(registry: &WeakRegistry, shared: &std::sync::Weak<Shared>, step: Duration) {
    let start = Instant::now();
    let mut ticks: u32 = 0;
    loop {
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        Windows::new(shared, registry).tick();
        // The next tick on the step's grid; a tick that came late skips the ones it missed.
        let elapsed = start.elapsed();
        ticks = ticks.saturating_add(1);
        let mut next = step * ticks;
        while next <= elapsed {
            ticks = ticks.saturating_add(1);
            next = step * ticks;
        }
        std::thread::sleep(next - elapsed);
    }
}

/// The last stretch of a registry's windowed statistics: see [`Windows::last`].
#[derive(Debug, Clone)]
pub struct Window {
    shared: Arc<Shared>,
    length: Duration,
    coarse: bool,
}

impl Window {
    /// The length asked for.
    #[must_use]
    pub fn length(&self) -> Duration {
        self.length
    }

    /// The statistics of the series named `name` (the family name, or for counters the
    /// sample name with `_total`) whose labels include all of `labels`, added together.
    /// A selection that matches nothing gives empty statistics ([`Stats::series`] is 0).
    #[must_use]
    pub fn stats(&self, name: &str, labels: &[(&str, &str)]) -> Stats {
        let state = self.shared.state();
        let span = Span::of(&state, self.length, self.coarse);
        let mut stats = Stats::empty(span.seconds);
        for series in state.tracked() {
            let named = *series.family == *name
                || (series.kind == MetricKind::Counter
                    && name.strip_suffix("_total") == Some(&*series.family));
            if named
                && labels
                    .iter()
                    .all(|&(k, v)| series.label(k).is_some_and(|own| own == v))
            {
                stats.add(series, &span);
            }
        }
        stats
    }

    /// The golden signals of every route the HTTP recorder saw (either naming preset, under
    /// any registry prefix), per method, busiest first.
    #[must_use]
    pub fn routes(&self) -> Vec<RouteSignals> {
        self.signals(false)
            .into_iter()
            .map(|(method, route, signals)| RouteSignals {
                method,
                route,
                signals,
            })
            .collect()
    }

    /// The golden signals of every `#[instrumented]` function, busiest first.
    #[must_use]
    pub fn functions(&self) -> Vec<FunctionSignals> {
        self.signals(true)
            .into_iter()
            .map(|(function, module, signals)| FunctionSignals {
                function,
                module,
                signals,
            })
            .collect()
    }

    /// The signals of each route (or function), with its two labels, busiest first.
    fn signals(&self, functions: bool) -> Vec<(String, String, Signals)> {
        let state = self.shared.state();
        let span = Span::of(&state, self.length, self.coarse);
        let mut signals: Vec<(String, String, Signals)> = signals::groups(&state, functions)
            .into_iter()
            .map(|g| {
                let signals = g.signals(&span);
                (g.first, g.second, signals)
            })
            .collect();
        signals.sort_by(|a, b| b.2.rate.total_cmp(&a.2.rate));
        signals
    }
}

impl Registry {
    /// Turns on the windowed statistics of this registry (of its whole store, whichever view
    /// it is called on), or returns them if they are on already with the same options. No
    /// tick is taken until [`Windows::spawn_ticker`] or [`Windows::tick`] is called.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWindow`] when the options are invalid (steps of zero, a coarse step
    /// that is not a multiple of the fine one, rings of no slots or more than
    /// [`MAX_SLOTS`]), or differ from those the windows were enabled with.
    pub fn enable_windows(&self, config: WindowConfig) -> Result<Windows, Error> {
        config.check()?;
        let shared = self.windows_shared(config.clone());
        if shared.config != config {
            return Err(Error::InvalidWindow {
                reason: "the windowed statistics are enabled already, with other options".into(),
            });
        }
        Ok(Windows::new(shared, self.clone()))
    }

    /// The windowed statistics, if they were enabled.
    #[must_use]
    pub fn windows(&self) -> Option<Windows> {
        self.windows_enabled()
            .map(|shared| Windows::new(shared, self.clone()))
    }

    /// The last `length` of the windowed statistics: `registry.windows()?.last(length)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWindow`] when the windows are not enabled, or as [`Windows::last`].
    pub fn window(&self, length: Duration) -> Result<Window, Error> {
        self.windows()
            .ok_or_else(|| Error::InvalidWindow {
                reason: "the windowed statistics are not enabled (Registry::enable_windows)".into(),
            })?
            .last(length)
    }
}
