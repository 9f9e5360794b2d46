//! The shipped alerting rules: valid for Prometheus, and doing what their tests say.

use std::path::PathBuf;
use std::process::Command;

use vitals_tests::require_program;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn promtool(args: &[&str]) -> (bool, String) {
    let promtool = require_program(
        "promtool",
        "apt-get update && apt-get install -y prometheus",
    );
    let output = Command::new(promtool)
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[test]
fn promtool_accepts_the_rules() {
    let (ok, report) = promtool(&["check", "rules", "rules.yml"]);
    assert!(ok, "{report}");
    assert!(report.contains("SUCCESS: 8 rules found"), "{report}");
}

#[test]
fn the_rules_pass_their_unit_tests() {
    let (ok, report) = promtool(&["test", "rules", "rules_test.yml"]);
    assert!(ok, "{report}");
    assert!(report.contains("SUCCESS"), "{report}");
}
