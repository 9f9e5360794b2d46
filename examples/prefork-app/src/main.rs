//! A pre-fork server: a supervisor process and `WORKERS` axum worker processes that share one
//! port, each with the routes and the metrics layer of `axum-app`. Whichever worker answers
//! `GET /metrics` serves the merged metrics of all of them, through vitals' multi-process mode.
//!
//! ```text
//! cargo run -p prefork-app            # WORKERS=4, LISTEN=127.0.0.1:3002
//! curl localhost:3002/users/42        # answered by one of the workers
//! curl localhost:3002/metrics         # every worker's requests, summed
//! ```
//!
//! - `WORKERS`: how many worker processes (default 4).
//! - `APP`: `axum` (default) or `actix`: the workers serve `axum-app` or its actix-web twin,
//!   `actix-app`, with the same routes and metric names.
//! - `LISTEN`: the address they share (default `127.0.0.1:3002`).
//! - `PROMETHEUS_MULTIPROC_DIR`: the directory of the metric files (default a fresh
//!   temporary directory, removed at exit).
//!
//! The supervisor binds the address first, with `SO_REUSEPORT`, so that a port already taken
//! fails at once; each worker binds it the same way and listens, and the kernel spreads the
//! connections across them. (Handing the supervisor's own socket to its workers would take
//! `unsafe` code to keep the descriptor open across `exec`.) The supervisor restarts any
//! worker that exits or is killed, and marks it dead, so that its in-flight requests stop
//! counting while its totals stay. It holds the directory open too, which keeps a restart
//! from being taken for a new run, and counts the restarts in
//! `prefork_worker_restarts_total`, on the same `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::process::{Child, Command};
use vitals_core::multiprocess::{mark_process_dead, DIR_ENV};
use vitals_core::Registry;

/// Set in a worker's environment: the process is a worker, not the supervisor.
const WORKER_ENV: &str = "PREFORK_APP_WORKER";

fn main() {
    let result = match (std::env::var_os(WORKER_ENV), app()) {
        (_, Err(e)) => Err(e),
        (Some(_), Ok(App::Actix)) => actix_web::rt::System::new().block_on(actix_worker()),
        (worker, Ok(_)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|runtime| {
                runtime.block_on(async {
                    if worker.is_some() {
                        axum_worker().await
                    } else {
                        supervisor().await
                    }
                })
            }),
    };
    if let Err(error) = result {
        eprintln!("prefork-app: {error}");
        std::process::exit(1);
    }
}

/// Which app the workers serve.
#[derive(Debug, Clone, Copy)]
enum App {
    Axum,
    Actix,
}

fn app() -> Result<App, String> {
    match std::env::var("APP").as_deref() {
        Err(_) | Ok("" | "axum") => Ok(App::Axum),
        Ok("actix") => Ok(App::Actix),
        Ok(other) => Err(format!("APP={other:?}: expected axum or actix")),
    }
}

fn listen_address() -> Result<SocketAddr, String> {
    let address = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3002".to_owned());
    address
        .parse()
        .map_err(|e| format!("LISTEN={address:?} is not an address: {e}"))
}

/// A socket bound to `address` with `SO_REUSEPORT`, so that every worker can bind it too.
fn shared_socket(address: SocketAddr) -> Result<TcpSocket, String> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("cannot make a socket: {e}"))?;
    socket
        .set_reuseport(true)
        .and_then(|()| socket.set_reuseaddr(true))
        .and_then(|()| socket.bind(address))
        .map_err(|e| format!("cannot bind {address}: {e}"))?;
    Ok(socket)
}

async fn axum_worker() -> Result<(), String> {
    let address = listen_address()?;
    // The directory first, with a clear error, before the app's registry falls back to memory.
    Registry::multiprocess_from_env().map_err(|e| e.to_string())?;
    let app = axum_app::app().map_err(|e| format!("cannot register the HTTP metrics: {e}"))?;
    let listener = shared_socket(address)?
        .listen(1024)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    // The supervisor holds the other end of stdin: end of file means it is gone.
    let shutdown = async {
        tokio::select! {
            () = terminated() => {}
            () = supervisor_gone() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn actix_worker() -> Result<(), String> {
    let address = listen_address()?;
    Registry::multiprocess_from_env().map_err(|e| e.to_string())?;
    actix_app::app().map_err(|e| format!("cannot register the HTTP metrics: {e}"))?;
    let listener = shared_socket(address)?
        .listen(1024)
        .and_then(tokio::net::TcpListener::into_std)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let server = actix_web::HttpServer::new(|| {
        actix_app::app().expect("registered once above with the same options")
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .map_err(|e| format!("cannot serve on {address}: {e}"))?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        tokio::select! {
            () = terminated() => {}
            () = supervisor_gone() => {}
        }
        handle.stop(true).await;
    });
    server.await.map_err(|e| format!("server error: {e}"))
}

async fn supervisor() -> Result<(), String> {
    let address = listen_address()?;
    let workers: usize = match std::env::var("WORKERS") {
        Ok(n) => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("WORKERS={n:?} is not a positive number"))?,
        Err(_) => 4,
    };
    let (dir, temporary) = match std::env::var_os(DIR_ENV) {
        Some(dir) => (PathBuf::from(dir), false),
        None => (
            std::env::temp_dir().join(format!("prefork-app-{}", std::process::id())),
            true,
        ),
    };
    let registry = Registry::multiprocess(&dir).map_err(|e| e.to_string())?;
    let restarts = registry
        .counter(
            "prefork_worker_restarts",
            "Workers restarted after they exited.",
        )
        .register()
        .map_err(|e| e.to_string())?;
    // Held, not listened on: it only claims the address, so that a taken port fails here.
    let _claim = shared_socket(address)?;

    let mut children = Vec::with_capacity(workers);
    for _ in 0..workers {
        children.push(start_worker(&dir, address)?);
    }
    println!(
        "listening on http://{address} with {workers} workers (metrics at \
         http://{address}/metrics, files in {})",
        dir.display()
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let stop = terminated();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {}
        }
        for (child, pid) in &mut children {
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            // Its live gauges (in-flight requests) stop counting now; its totals stay. (The
            // next scrape would find it dead by itself; this says so at once.)
            let _ = mark_process_dead(&dir, *pid);
            println!("worker {pid} exited ({status}); starting another");
            restarts.inc();
            (*child, *pid) = start_worker(&dir, address)?;
        }
    }
    for (child, _) in &mut children {
        let _ = child.kill().await;
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { term.as_mut()?.recv().await } => {}
    }
}

/// Waits until stdin reaches its end.
async fn supervisor_gone() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Starts a worker; returns it and its pid.
fn start_worker(dir: &Path, address: SocketAddr) -> Result<(Child, u32), String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let child = Command::new(program)
        .env(WORKER_ENV, "1")
        .env("APP", std::env::var("APP").unwrap_or_default())
        .env(DIR_ENV, dir)
        .env("LISTEN", address.to_string())
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start a worker: {e}"))?;
    let pid = child.id().unwrap_or_default();
    println!("worker {pid} started");
    Ok((child, pid))
}
