//! The standard `process_*` metrics of the running process, read from Linux's `/proc`.

use crate::collector::{CollectError, Collector, MetricFamily};
use crate::metric::MetricValue;

/// A [`Collector`] of the standard process metrics, named as every Prometheus client names
/// them:
///
/// | metric | type | from |
/// |---|---|---|
/// | `process_cpu_seconds_total` | counter | `/proc/self/stat` (user + system time) |
/// | `process_resident_memory_bytes` | gauge | `/proc/self/stat` (RSS pages) |
/// | `process_virtual_memory_bytes` | gauge | `/proc/self/stat` |
/// | `process_open_fds` | gauge | entries of `/proc/self/fd` |
/// | `process_max_fds` | gauge | soft limit in `/proc/self/limits` |
/// | `process_start_time_seconds` | gauge | start ticks in `/proc/self/stat` and `btime` in `/proc/stat` |
/// | `process_threads` | gauge | `/proc/self/stat` |
///
/// The clock-tick rate and page size come from the process's auxiliary vector
/// (`/proc/self/auxv`), so no `unsafe` call to `sysconf` is needed. On systems without
/// `/proc` the collector fails, which the registry counts and the scrape survives.
///
/// ```
/// # #[cfg(target_os = "linux")] {
/// use vitals_core::{ProcessCollector, Registry};
///
/// let registry = Registry::new();
/// registry.register_collector("process", ProcessCollector::new())?;
/// let rss = registry.get_sample_value("process_resident_memory_bytes", &[]).unwrap();
/// assert!(rss > 0.0);
/// # }
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector {
    _private: (),
}

impl ProcessCollector {
    /// A collector of the current process's metrics.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Collector for ProcessCollector {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let stat = Stat::parse(&stat).ok_or("unexpected /proc/self/stat format")?;
        let auxv = std::fs::read("/proc/self/auxv")?;
        let ticks = aux_value(&auxv, AT_CLKTCK)
            .filter(|&t| t > 0)
            .unwrap_or(100);
        let page_size = aux_value(&auxv, AT_PAGESZ)
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        #[allow(clippy::cast_precision_loss)]
        let ticks = ticks as f64;

        #[allow(clippy::cast_precision_loss)]
        let cpu = (stat.utime + stat.stime) as f64 / ticks;
        let open_fds = std::fs::read_dir("/proc/self/fd")?.count();
        let mut families = vec![
            MetricFamily::counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )
            .with_unit("seconds")
            .with_sample(&[], MetricValue::counter(cpu)),
            MetricFamily::gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )
            .with_unit("bytes")
            .with_sample(
                &[],
                MetricValue::gauge(stat.rss_pages.saturating_mul(page_size)),
            ),
            MetricFamily::gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )
            .with_unit("bytes")
            .with_sample(&[], MetricValue::gauge(stat.vsize)),
            MetricFamily::gauge("process_open_fds", "Number of open file descriptors.")
                .with_sample(&[], MetricValue::gauge(open_fds)),
            MetricFamily::gauge("process_threads", "Number of OS threads in the process.")
                .with_sample(&[], MetricValue::gauge(stat.threads)),
        ];
        if let Some(max) = max_open_files(&std::fs::read_to_string("/proc/self/limits")?) {
            families.push(
                MetricFamily::gauge(
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                )
                .with_sample(&[], MetricValue::gauge(max)),
            );
        }
        if let Some(boot) = boot_time(&std::fs::read_to_string("/proc/stat")?) {
            #[allow(clippy::cast_precision_loss)]
            let start = boot as f64 + stat.start_ticks as f64 / ticks;
            families.push(
                MetricFamily::gauge(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                )
                .with_unit("seconds")
                .with_sample(&[], MetricValue::gauge(start)),
            );
        }
        Ok(families)
    }
}

const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// Finds one entry of the auxiliary vector: native-endian `(type, value)` word pairs.
fn aux_value(auxv: &[u8], wanted: u64) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |chunk: &[u8]| -> Option<u64> {
        let bytes: [u8; WORD] = chunk.try_into().ok()?;
        u64::try_from(usize::from_ne_bytes(bytes)).ok()
    };
    auxv.chunks_exact(2 * WORD).find_map(|pair| {
        let (key, value) = pair.split_at(WORD);
        (word(key)? == wanted).then(|| word(value)).flatten()
    })
}

/// The fields of `/proc/self/stat` the collector reads.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn parse(stat: &str) -> Option<Self> {
        // The command name (field 2) is in parentheses and may hold spaces and parentheses
        // itself: the fields that follow start after the last `)`.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `fields[0]` is field 3 (state) of proc(5).
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        Some(Self {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    // "unlimited" has no number to report.
    soft.parse().ok()
}

fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_a_command_name_with_spaces_and_parentheses() {
        let line = "1234 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 7 0 \
                    4242 123456789 2048 18446744073709551615";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 150,
                stime: 50,
                threads: 7,
                start_ticks: 4242,
                vsize: 123_456_789,
                rss_pages: 2048,
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn limits_and_btime_are_read_and_unlimited_is_not_a_number() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_running_process_reports_plausible_values() {
        let registry = crate::Registry::new();
        registry
            .register_collector("process", ProcessCollector::new())
            .unwrap();
        let get = |name| registry.get_sample_value(name, &[]).unwrap_or(f64::NAN);
        assert!(get("process_resident_memory_bytes") > 1_000_000.0);
        assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
        assert!(get("process_open_fds") >= 3.0);
        assert!(get("process_max_fds") >= get("process_open_fds"));
        assert!(get("process_threads") >= 1.0);
        assert!(get("process_cpu_seconds_total") >= 0.0);
        let start = get("process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start} vs {now}"
        );
    }
}
