//! Cross-crate and end-to-end tests of vitals live in `tests/`; this library holds what they
//! share: finding the real components (promtool, Prometheus, Pushgateway) and starting them.

use std::path::PathBuf;
use std::process::Command;

/// Finds an executable of a real component on `PATH`, or fails the calling test with a message
/// that names the command installing it. A test never passes because a component is missing.
///
/// # Panics
///
/// Panics (failing the test) when the program is not installed.
#[must_use]
pub fn require_program(program: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "`{program}` is not installed; install it with `{install}` \
             (or run `bash .ci/test`, which installs every component the tests use)"
        ),
    }
}

/// Runs `promtool check metrics` on an exposition and returns what it reported: `Ok(())` when
/// it exited successfully and printed no finding, `Err(report)` otherwise.
///
/// # Panics
///
/// Panics (failing the test) when promtool is not installed or cannot be started.
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    use std::io::Write as _;
    let promtool = require_program(
        "promtool",
        "apt-get update && apt-get install -y prometheus",
    );
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let output = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool exited with {}: {report}", output.status))
    }
}
