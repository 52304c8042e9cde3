//! `harness validate` and `harness list`, run as a user runs them: every shipped configuration
//! validates, and each kind of mistake in `tests/fixtures/broken/` is reported with its message and
//! its line:col, all at once, with exit code 2.
//!
//! Each broken fixture lists the problems it must produce in `# expect: LINE:COL: key: message` comments
//! (prefixed with another file's path when the problem is in a procedure it names). The test requires
//! a one-to-one, in-order match between those lines and what the binary prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn harness(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the harness binary runs")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_validates_by_name_and_by_path() {
    let scenarios = toml_files(&repo().join("scenarios"));
    assert!(scenarios.len() >= 6, "the six standard configurations ship");
    for path in scenarios {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        // By name from a directory without ./scenarios: the built-in copy.
        let out = harness(&std::env::temp_dir(), &["validate", &name]);
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(0), "ok"),
            "{name} (built-in): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // By path, from the repository.
        let rel = format!("scenarios/{name}.toml");
        let out = harness(&repo(), &["validate", &rel]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_file_in_scenarios_is_built_in() {
    for (dir, builtin) in [
        ("scenarios", harness::scenario::BUILTIN),
        ("scenarios/procedures", harness::procedure::BUILTIN),
    ] {
        for path in toml_files(&repo().join(dir)) {
            let rel = format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap());
            let (_, text) = builtin
                .iter()
                .find(|(file, _)| *file == rel)
                .unwrap_or_else(|| panic!("{rel} is not in the built-in list"));
            assert_eq!(*text, std::fs::read_to_string(&path).unwrap(), "{rel}");
        }
    }
}

#[test]
fn every_shipped_procedure_validates() {
    for path in toml_files(&repo().join("scenarios/procedures")) {
        let source = harness::config::catalog::read_source(&path).unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if let Err(problems) = harness::procedure::parse(&source, Some(stem)) {
            panic!("{}:\n{problems}", path.display());
        }
    }
}

#[test]
fn the_standard_procedures_have_the_shape_of_the_seed() {
    let load = |name: &str| {
        let entry = harness::procedure::catalog(&[])
            .unwrap()
            .find(name)
            .unwrap()
            .source()
            .unwrap();
        harness::procedure::parse(&entry, Some(name)).unwrap()
    };
    use harness::procedure::Severity::*;
    let severities = |p: &harness::procedure::Procedure| {
        p.rules
            .iter()
            .map(|r| (r.id.clone(), r.severity))
            .collect::<Vec<_>>()
    };
    let phase = load("PHASE_TRANSITION_STANDARD");
    assert_eq!(phase.steps.len(), 4);
    assert_eq!(phase.rollbacks.len(), 2);
    let rules = severities(&phase);
    for expected in [("VR001", Critical), ("VR002", Critical), ("VR003", High)] {
        assert!(
            rules.contains(&(expected.0.to_string(), expected.1)),
            "{rules:?}"
        );
    }
    let agent = load("AGENT_HANDOFF_STANDARD");
    assert_eq!(agent.steps.len(), 4);
    assert_eq!(agent.rollbacks.len(), 1);
    let rules = severities(&agent);
    for expected in [("VR004", Critical), ("VR005", Critical), ("VR007", Medium)] {
        assert!(
            rules.contains(&(expected.0.to_string(), expected.1)),
            "{rules:?}"
        );
    }
    let all: Vec<String> = [&phase, &agent]
        .iter()
        .flat_map(|p| p.rules.iter().map(|r| r.id.clone()))
        .collect();
    for id in ["VR006", "VR008"] {
        assert!(all.contains(&id.to_string()), "{id} is placed somewhere");
    }
    let report = load("REPORT_SIGNOFF");
    let refused: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.expect.contains(409) && !s.expect.contains(200))
        .map(|s| s.id.as_str())
        .collect();
    assert!(refused.contains(&"early_sign_off"), "{refused:?}");
}

/// `(expected prefix, fixture)` for every `# expect:` line of every broken fixture.
fn expectations(path: &Path) -> Vec<String> {
    let file = path.file_name().unwrap().to_str().unwrap();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            if e.starts_with("procedures/") {
                e.to_string()
            } else {
                format!("{file}:{e}")
            }
        })
        .collect()
}

#[test]
fn each_kind_of_mistake_is_reported_with_its_place() {
    let dir = repo().join("tests/fixtures/broken");
    let fixtures = toml_files(&dir);
    assert!(fixtures.len() >= 10);
    for path in fixtures {
        let file = path.file_name().unwrap().to_str().unwrap();
        let expected = expectations(&path);
        assert!(!expected.is_empty(), "{file} has no `# expect:` lines");
        let out = harness(&dir, &["validate", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file} must exit 2:\n{stderr}");
        assert!(
            out.stdout.is_empty(),
            "{file}: nothing on stdout when invalid"
        );
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.ends_with("problem(s)"))
            .collect();
        assert_eq!(
            problems.len(),
            expected.len(),
            "{file}: expected {} problem(s), got:\n{stderr}",
            expected.len()
        );
        for (got, want) in problems.iter().zip(&expected) {
            assert!(
                got.starts_with(want.as_str()),
                "{file}:\n  want: {want}\n   got: {got}"
            );
        }
        assert!(
            stderr
                .trim_end()
                .ends_with(&format!("{} problem(s)", expected.len())),
            "{stderr}"
        );
    }
}

#[test]
fn several_files_report_each_and_fail_together() {
    let dir = repo().join("tests/fixtures/broken");
    let out = harness(
        &dir,
        &["validate", "unknown_key.toml", "missing_target.toml"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("unknown_key.toml: 1 problem(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing_target.toml: 1 problem(s)"),
        "{stderr}"
    );
}

#[test]
fn unknown_names_and_missing_files_are_invalid_commands() {
    let out = harness(&repo(), &["validate", "RELIABILITY_STANDRAD"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no scenario named `RELIABILITY_STANDRAD` — did you mean `RELIABILITY_STANDARD`?"
        ),
        "{stderr}"
    );

    let out = harness(&repo(), &["validate", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read no/such/file.toml"));

    let out = harness(&repo(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "usage errors are exit 2 too");
}

#[test]
fn a_scenarios_directory_adds_and_overrides_by_name() {
    let dir = std::env::temp_dir().join(format!("harness-list-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("procedures")).unwrap();
    std::fs::write(
        dir.join("RELIABILITY_STANDARD.toml"),
        "name = \"RELIABILITY_STANDARD\"\nsuite = \"reliability\"\ntimeout = \"5s\"\n\
         [target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n[load]\niterations = 3\n",
    )
    .unwrap();
    std::fs::write(dir.join("MISNAMED.toml"), "name = \"OTHER\"\n").unwrap();

    let out = harness(
        &std::env::temp_dir(),
        &["--scenarios", dir.to_str().unwrap(), "list"],
    );
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().next().unwrap();
    for column in ["NAME", "SUITE", "TARGET", "LOAD", "THRESHOLDS"] {
        assert!(header.contains(column), "{header}");
    }
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{table}"))
    };
    assert!(
        row("RELIABILITY_STANDARD").contains("http"),
        "the file overrides the built-in"
    );
    assert!(row("RELIABILITY_STANDARD").contains("closed: 3 it × 1 workers"));
    assert!(
        row("STRESS_STANDARD").contains("stepped"),
        "built-ins stay listed"
    );
    assert!(row("CONCURRENCY_STANDARD").contains("1500 it × 50 workers"));
    assert!(row("MISNAMED").contains("invalid"), "{table}");

    // The same as JSON, for scripts.
    let out = harness(
        &std::env::temp_dir(),
        &["--scenarios", dir.to_str().unwrap(), "list", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let item = |name: &str| {
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {items}"))
            .clone()
    };
    let overridden = item("RELIABILITY_STANDARD");
    assert_eq!(overridden["target"]["kind"], "http");
    assert_eq!(
        overridden["target"]["endpoint"]["url"],
        "http://127.0.0.1:9/"
    );
    assert_eq!(overridden["load"]["summary"], "3 it × 1 workers");
    let concurrency = item("CONCURRENCY_STANDARD");
    assert_eq!(concurrency["source"], "built-in");
    assert_eq!(concurrency["thresholds"][2]["metric"], "lock.acquire.p95");
    assert_eq!(concurrency["thresholds"][2]["condition"], "< 100ms");
    let misnamed = item("MISNAMED");
    assert_eq!(misnamed["valid"], false);
    assert!(
        misnamed["problem"]
            .as_str()
            .unwrap()
            .contains("differs from the file name"),
        "{misnamed}"
    );

    let out = harness(
        &std::env::temp_dir(),
        &["--scenarios", dir.to_str().unwrap(), "validate", "MISNAMED"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("name `OTHER` differs from the file name `MISNAMED.toml`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_that_is_not_utf8_or_quotes_hidden_characters_gets_a_place_and_one_line() {
    let dir = std::env::temp_dir().join(format!("harness-validate-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"name = \"x\"\nsuite = \"reli\xe9bility\"\n").unwrap();
    let out = harness(&dir, &["validate", "latin1.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("latin1.toml:2:14: byte 0xe9 is not UTF-8 — "),
        "{stderr}"
    );

    // A value with a line break, a NUL and a right-to-left override, quoted back in a message.
    let hidden = dir.join("hidden.toml");
    std::fs::write(
        &hidden,
        "name = \"hidden\"\nsuite = \"reliability\"\ntimeout = \"30s\"\n[target]\nkind = \"websocket\"\n\
         [websocket.protocol]\ncorrelation_id = \"id\\n\\u0000\\u202Eevil\"\n\
         [load]\niterations = 1\nconcurrency = 1\n",
    )
    .unwrap();
    let out = harness(&dir, &["validate", "hidden.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`id\\n\\u{0}\\u{202e}evil` is not a JSON pointer"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{202e}') && !stderr.contains('\0'));
    assert_eq!(
        stderr.lines().count(),
        2,
        "one line for the problem, one for the count: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scenario_whose_run_would_exceed_the_memory_limit_is_refused_by_validate() {
    let dir = std::env::temp_dir().join(format!("validate-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wide.toml");
    std::fs::write(
        &file,
        "name = \"wide\"\nsuite = \"concurrency\"\ntimeout = \"10s\"\n[target]\nkind = \"http\"\n\
         url = \"http://127.0.0.1:9\"\n[load]\niterations = 100000\nconcurrency = 10000\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let refused = harness(&dir, &["validate", path, "--memory-limit", "64MiB"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("load.concurrency") && err.contains("64 MiB"),
        "names the setting and the limit: {err}"
    );
    let json = harness(
        &dir,
        &["validate", path, "--memory-limit", "64MiB", "--json"],
    );
    let items: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(items[0]["valid"], false);
    assert!(
        items[0]["error"]
            .as_str()
            .unwrap()
            .contains("--memory-limit")
    );
    let ok = harness(&dir, &["validate", path, "--memory-limit", "4GiB"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
