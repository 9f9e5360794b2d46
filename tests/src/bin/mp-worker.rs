//! A worker process of a multi-process deployment, for the multi-process tests: it records
//! into a registry in multi-process mode on the directory given, the same metrics as the
//! tests' Python worker, scaled by `n`, then answers commands on stdin until it is killed or
//! its stdin closes.
//!
//! `mp-worker <dir> <n>`, or `mp-worker - <n>` to record into `Registry::global()`, which
//! reads `PROMETHEUS_MULTIPROC_DIR`; commands: `scrape` prints the registry's text exposition followed by
//! a line `END`; `inc` adds one to `mp_jobs_total` and prints `OK`. It prints `READY <id>` once
//! its values are written, `<id>` being its name in the directory's files.

use std::io::{BufRead, Write};

use vitals_core::multiprocess::GaugeMode;
use vitals_core::{Buckets, Registry};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u32>().ok()))
    else {
        eprintln!("usage: mp-worker <dir> <n>");
        std::process::exit(2);
    };
    let registry = if dir == "-" {
        let global = Registry::global().clone();
        if !global.is_multiprocess() {
            eprintln!("mp-worker: the global registry is not in multi-process mode");
            std::process::exit(1);
        }
        global
    } else {
        match Registry::multiprocess(&dir) {
            Ok(registry) => registry,
            Err(e) => {
                eprintln!("mp-worker: {e}");
                std::process::exit(1);
            }
        }
    };
    if let Err(e) = record(&registry, n) {
        eprintln!("mp-worker: {e}");
        std::process::exit(1);
    }
    let jobs = registry
        .counter("mp_jobs", "Jobs.")
        .register()
        .expect("registered above");
    let mut out = std::io::stdout().lock();
    let id = vitals_core::multiprocess::process_id().unwrap_or_default();
    writeln!(out, "READY {id}")
        .and_then(|()| out.flush())
        .expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "scrape" => {
                let text = vitals_core::encoding::text::encode(&registry);
                writeln!(out, "{text}END").expect("stdout");
            }
            "inc" => {
                jobs.inc();
                writeln!(out, "OK").expect("stdout");
            }
            other => writeln!(out, "ERROR unknown command {other:?}").expect("stdout"),
        }
        out.flush().expect("stdout");
    }
}

fn record(registry: &Registry, n: u32) -> Result<(), vitals_core::Error> {
    let requests = registry
        .float_counter("mp_requests", "Requests.")
        .label_names(["route", "method"])
        .register()?;
    requests
        .with_label_values(&["/a", "GET"])?
        .inc_by(f64::from(n))?;
    requests
        .with_label_values(&["/b \"q\"\\ \n ü", "POST"])?
        .inc_by(f64::from(n) * 0.25)?;
    if n % 2 == 1 {
        requests.with_label_values(&["/only-odd", "GET"])?.inc();
    }
    registry
        .counter("mp_jobs", "Jobs.")
        .register()?
        .inc_by(u64::from(3 * n));
    let latency = registry
        .histogram("mp_latency_seconds", "Latency.")
        .buckets(Buckets::new([0.01, 0.1, 1.0])?)
        .label_names(["route"])
        .register()?;
    for i in 0..n {
        latency
            .with_label_values(&["/a"])?
            .observe(f64::from(i) * 0.05);
    }
    registry
        .summary("mp_size_bytes", "Sizes.")
        .register()?
        .observe(f64::from(n * 10));
    for mode in GaugeMode::ALL {
        registry
            .float_gauge(format!("mp_gauge_{mode}"), format!("Gauge {mode}."))
            .label_names(["shard"])
            .multiprocess_mode(mode)
            .register()?
            .with_label_values(&["x"])?
            .set(f64::from(n));
    }
    registry
        .gauge("mp_in_flight", "In flight.")
        .multiprocess_mode(GaugeMode::LiveSum)
        .register()?
        .add(i64::from(n));
    Ok(())
}
