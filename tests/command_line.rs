//! The command line as scripts and shells meet it: completions for bash, zsh and fish, a version
//! that names its commit, and the common options taken from `HARNESS_*` environment variables.

mod common;

use common::*;

#[test]
fn completions_generate_for_each_shell_and_know_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F _harness"),
        ("zsh", "#compdef harness"),
        ("fish", "complete -c harness"),
    ] {
        let o = run_harness(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["run", "compare", "validate", "serve", "ca-cert", "env-file"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let o = run_harness(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_version_names_the_commit() {
    let o = run_harness(&["--version"]);
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!("harness {} (", env!("CARGO_PKG_VERSION")))
            && (text.contains("commit ") || text.contains("unknown commit")),
        "{text}"
    );
}

#[test]
fn the_output_folder_and_the_seed_come_from_the_environment() {
    let server = serve(delayed(0));
    let dir = temp_dir("cli-env");
    let file = write_scenario(
        &dir,
        "env_opts",
        r#"name = "env_opts"
suite = "reliability"
timeout = "20s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/"

[load]
iterations = 3
concurrency = 1
"#,
    );
    let out = dir.join("from-env");
    let o = harness()
        .args(["run", file.to_str().unwrap(), "--quiet"])
        .env("HARNESS_TARGET", &server.url)
        .env("HARNESS_OUT", &out)
        .env("HARNESS_SEED", "4242")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_result(&out);
    assert_eq!(r["seed"], 4242);
    assert_eq!(r["totals"]["succeeded"], 3);
    // The command line wins over the environment.
    let o = harness()
        .args(["run", file.to_str().unwrap(), "--quiet", "--seed", "7"])
        .env("HARNESS_TARGET", &server.url)
        .env("HARNESS_OUT", &out)
        .env("HARNESS_SEED", "4242")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(read_result(&out)["seed"], 7);
}

#[test]
fn each_verb_offers_only_the_options_it_uses() {
    let help = |args: &[&str]| stdout(&run_harness(args));
    let handoff = help(&["serve", "handoff", "--help"]);
    let ws = help(&["serve", "ws", "--help"]);
    assert!(handoff.contains("--persist-delay") && !handoff.contains("--max-message-size"));
    assert!(ws.contains("--max-message-size") && !ws.contains("--persist-delay"));
    for (verb, flag) in [("handoff", "loose-rate-limit"), ("ws", "broken-rollback")] {
        let o = run_harness(&["serve", verb, "--defect", flag]);
        assert_eq!(o.status.code(), Some(2), "{verb} has no {flag} defect");
    }
    for args in [
        &["compare", "--help"][..],
        &["serve", "ws", "--help"],
        &["report", "--help"],
    ] {
        assert!(
            !help(args).contains("--scenarios"),
            "{args:?} reads no scenarios"
        );
    }
    for args in [
        &["run", "--help"][..],
        &["validate", "--help"],
        &["list", "--help"],
    ] {
        assert!(help(args).contains("--scenarios"), "{args:?}");
    }
    let compare = help(&["compare", "--help"]);
    assert!(
        compare.contains("The result to compare against"),
        "{compare}"
    );
    // Before the verb or after it.
    let dir = temp_dir("cli-scenarios");
    std::fs::write(
        dir.join("MINE_STANDARD.toml"),
        "name = \"MINE_STANDARD\"\nsuite = \"reliability\"\ntimeout = \"10s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[load]\niterations = 1\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    for args in [
        &["--scenarios", d, "validate", "MINE_STANDARD"][..],
        &["validate", "MINE_STANDARD", "--scenarios", d],
    ] {
        let o = run_harness(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}
