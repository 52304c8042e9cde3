//! Property tests over what a user or a target controls: mutated scenario and procedure files, unit
//! strings, templates, inbound frames, and hostile text in a result. None may panic; hostile text
//! reaches no report as markup. Each property runs a bounded number of cases (`PROPTEST_CASES`
//! raises it for a longer local search), seeded from the shipped scenarios and procedures and the
//! broken fixtures.

use std::collections::HashMap;

use harness::config::Source;
use harness::config::template::Template;
use harness::drivers::ws::frame::Inbound;
use harness::report::Exporter;
use proptest::prelude::*;
use serde_json::Value;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128)
}

/// Every shipped scenario, procedure and broken fixture: the seed corpus.
fn corpus() -> Vec<String> {
    let mut out: Vec<String> = harness::scenario::BUILTIN
        .iter()
        .chain(harness::procedure::BUILTIN)
        .map(|(_, t)| t.to_string())
        .collect();
    let broken = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    for e in std::fs::read_dir(broken).unwrap().flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            out.push(t);
        }
    }
    out
}

/// A corpus file, cut, spliced with arbitrary text, or with one character replaced.
fn mutated() -> impl Strategy<Value = String> {
    let corpus = corpus();
    (
        0..corpus.len(),
        any::<u32>(),
        any::<u32>(),
        ".{0,40}",
        0u8..3,
    )
        .prop_map(move |(i, a, b, insert, how)| {
            let text = &corpus[i];
            let chars: Vec<char> = text.chars().collect();
            let at = a as usize % (chars.len() + 1);
            match how {
                0 => chars[..at].iter().collect(),
                1 => {
                    let mut s: String = chars[..at].iter().collect();
                    s.push_str(&insert);
                    s.extend(&chars[at..]);
                    s
                }
                _ => {
                    let mut c = chars.clone();
                    if !c.is_empty() {
                        let j = b as usize % c.len();
                        c[j] = insert.chars().next().unwrap_or('"');
                    }
                    c.into_iter().collect()
                }
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn scenario_and_procedure_loaders_never_panic(text in mutated()) {
        let procedures = harness::procedure::catalog(&[]).unwrap();
        let resolver = harness::scenario::validate::Resolver { procedures: &procedures, base_dir: None };
        let source = Source::new("fuzz.toml", text.clone());
        if let Ok(s) = harness::scenario::parse(&source, None, &resolver) {
            let overrides = harness::plan::Overrides {
                target: Some(url::Url::parse("http://127.0.0.1:9/").unwrap()),
                ..Default::default()
            };
            let _ = harness::plan::build(&s, overrides);
        }
        let _ = harness::procedure::parse(&Source::new("fuzz.toml", text), None);
    }

    #[test]
    fn units_never_panic(text in "\\PC{0,24}|[0-9.eE+-]{1,30}(ms|s|m|h|us|/s|/m|KiB|MB|B|%)?") {
        let _ = harness::config::units::parse_duration(&text);
        let _ = harness::config::units::parse_rate(&text);
        let _ = harness::config::units::parse_size(&text);
    }

    #[test]
    fn templates_never_panic(text in "(\\PC|\\{\\{|\\}\\}| id|\\.){0,40}") {
        if let Ok(t) = Template::parse(&text) {
            let mut vars: HashMap<String, Value> = HashMap::new();
            vars.insert("id".into(), Value::String("a\"b\\c".into()));
            let _ = t.render(&vars);
        }
    }

    #[test]
    fn inbound_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), pointer in "(/[a-z~01]{0,4}){0,3}") {
        if let Some(frame) = Inbound::parse(&bytes) {
            let _ = frame.lookup(&pointer);
            let _ = frame.text(&pointer);
        }
        let json = format!("{{\"type\":{:?},\"id\":{}}}", String::from_utf8_lossy(&bytes), bytes.len());
        if let Some(frame) = Inbound::parse(json.as_bytes()) {
            prop_assert!(frame.lookup("/id").is_some());
        }
    }

    #[test]
    fn hostile_text_in_a_result_is_inert_in_every_report(text in "\\PC{0,40}|<[a-z]{1,6} [^>]{0,20}>|!\\[[a-z]{0,5}\\]\\(http://[a-z.]{1,10}\\)") {
        // A marker no template holds, so the text is found only where it was put.
        let text = format!("zq9x{text}");
        let mut r = fixture();
        r.reason = Some(text.clone());
        r.description = text.clone();
        r.metrics.error_samples.insert("connect".into(), vec![text.clone()]);
        let md = harness::report::markdown::Markdown.render(&r).unwrap();
        prop_assert!(!md.contains('<'), "summary.md: {md}");
        prop_assert!(!md.replace("\\]", "").contains("]("), "an unescaped link: {md}");
        prop_assert!(md.chars().all(|c| c == '\n' || !harness::text::is_hidden(c)));
        let html = harness::report::html::Html.render(&r).unwrap();
        let junit = harness::report::junit::Junit.render(&r).unwrap();
        if text.contains('<') {
            prop_assert!(!html.contains(&text) && !junit.contains(&text));
        }
    }
}

fn fixture() -> harness::result::RunResult {
    serde_json::from_str(include_str!(
        "fixtures/results/failure-injection-broken-rollback.json"
    ))
    .unwrap()
}
