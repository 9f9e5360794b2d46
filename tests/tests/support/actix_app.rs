//! The actix example app served on 127.0.0.1 with a free port, on a thread of its own, for the
//! test binaries that need it (included with `#[path]`: a folder under `tests/tests` is not a
//! test binary of its own).

use std::net::SocketAddr;

/// A running `actix_app`, stopped (gracefully) and joined by [`stop`](Self::stop).
pub(crate) struct ActixApp {
    pub(crate) address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl ActixApp {
    /// Serves `actix_app::app()` with one worker.
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(|| actix_app::app().unwrap())
                    .workers(1)
                    .listen(listener)
                    .unwrap()
                    .run();
                handle_tx.send(server.handle()).unwrap();
                server.await
            })
        });
        let handle = handle_rx.recv().unwrap();
        Self {
            address,
            handle,
            thread,
        }
    }

    /// Stops the server after the requests in progress and waits for its thread.
    pub(crate) fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        self.thread.join().unwrap().unwrap();
    }
}
