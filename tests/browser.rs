//! Every kind of report, opened in a real browser: headless Chromium loads it, and the test fails on
//! a console message (there are no scripts, so any message is a fault) or on a chart with nothing
//! drawn in its plot. Skipped, saying so, where no Chromium is installed (`apt-get install
//! chromium`; `HARNESS_CHROMIUM=/path/to/chrome` names another).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::*;
use harness::report::{self, Exporter};
use harness::result::RunResult;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HARNESS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// The page as the browser built it, and what it logged to its console.
fn load(browser: &Path, page: &Path) -> (String, Vec<String>) {
    let profile = temp_dir("chromium-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the browser starts");
    // A browser that hangs is stopped (it is ours) after a minute.
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the browser did not finish loading {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&o.stdout).into_owned(), console)
}

/// The numbers of an attribute list like `points="10,60 20,80"`.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let at = element.find(&format!(" {name}=\""))? + name.len() + 3;
    element[at..].split('"').next()
}

/// Marks drawn in a chart's plot: a line, a marker or a filled area below the caption and legend
/// (which take the top of each chart, and hold swatches of their own); not the axes.
fn data_marks(svg: &str) -> usize {
    const BELOW_LEGEND: f64 = 60.0;
    let num = |s: Option<&str>| s.and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let mut marks = 0;
    for element in svg.split('<').skip(1) {
        // Axes and ticks are drawn in black; no series is.
        let below = if element.starts_with("polyline") && attr(element, "stroke") != Some("#000000")
        {
            attr(element, "points").is_some_and(|p| {
                p.split_whitespace().count() >= 2
                    && p.split_whitespace().any(|xy| {
                        xy.split(',').nth(1).and_then(|y| y.parse::<f64>().ok())
                            > Some(BELOW_LEGEND)
                    })
            })
        } else if element.starts_with("circle") {
            num(attr(element, "cy")) > BELOW_LEGEND
        } else if element.starts_with("rect") {
            num(attr(element, "y")) > BELOW_LEGEND
                && num(attr(element, "height")) > 0.0
                && num(attr(element, "width")) < 700.0
        } else {
            false
        };
        marks += usize::from(below);
    }
    marks
}

/// Loads `html` (written to `dir/name`) and checks it as a reader would see it.
fn check(browser: &Path, dir: &Path, name: &str, html: &str) -> usize {
    let page = dir.join(name);
    std::fs::write(&page, html).unwrap();
    let (dom, console) = load(browser, &page);
    assert!(console.is_empty(), "{name}: the console said {console:#?}");
    assert!(
        dom.contains("</main>"),
        "{name}: the page did not load: {dom}"
    );
    let charts: Vec<&str> = dom.split("class=\"chart\"").skip(1).collect();
    for (i, chart) in charts.iter().enumerate() {
        let svg = chart.split("</svg>").next().unwrap_or("");
        assert!(svg.contains("<svg"), "{name}: chart {i} holds no SVG");
        assert!(
            data_marks(svg) > 0,
            "{name}: chart {i} draws nothing: {svg}"
        );
    }
    charts.len()
}

fn fixture() -> RunResult {
    harness::result::write::read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/results/failure-injection-broken-rollback.json"),
    )
    .unwrap()
}

/// A run of `scenario` against `url`, its result.
fn run(dir: &Path, name: &str, scenario: &str, url: &str) -> RunResult {
    let file = write_scenario(dir, name, scenario);
    let out = dir.join(name);
    let o = harness().args(run_args(&file, url, &out)).output().unwrap();
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    harness::result::write::read_json(&out.join("result.json")).unwrap()
}

#[test]
fn every_kind_of_report_loads_in_a_browser_with_no_console_message_and_no_empty_chart() {
    let Some(browser) = chromium() else {
        eprintln!(
            "skipped: no Chromium found (apt-get install chromium, or set HARNESS_CHROMIUM); the \
             reports were not opened in a browser"
        );
        return;
    };
    let dir = temp_dir("browser");
    // A catalogue service of our own: 2 ms answers, one in seven slower.
    let server = serve(Router::new().route(
        "/catalogue/{n}",
        get(
            |axum::extract::Path(n): axum::extract::Path<u64>| async move {
                let ms = if n % 7 == 0 { 25 } else { 2 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("{{\"n\":{n}}}")
            },
        ),
    ));
    let request = "[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[target.request]\npath = \"/catalogue/{{iteration}}\"\n";
    let open = run(
        &dir,
        "open",
        &format!(
            "name = \"open\"\nsuite = \"performance\"\ntimeout = \"30s\"\n{request}[load]\nmodel = \"open\"\nrate = \"40/s\"\nduration = \"3s\"\n[thresholds]\n\"latency.p95\" = \"< 40ms\"\n"
        ),
        &server.url,
    );
    let stress = run(
        &dir,
        "stress",
        &format!(
            "name = \"stepped\"\nsuite = \"stress\"\ntimeout = \"30s\"\n{request}[load]\nmodel = \"stepped\"\nbase_rate = \"10/s\"\nstress_factor = 2.0\nstage_duration = \"1s\"\nmax_stages = 3\nmax_in_flight = 10\n[thresholds]\nsuccess_rate = \">= 0.95\"\n"
        ),
        &server.url,
    );
    let mut drawn = 0;
    for (name, r) in [
        ("handoff.html", fixture()),
        ("open.html", open.clone()),
        ("stress.html", stress),
    ] {
        drawn += check(
            &browser,
            &dir,
            name,
            &report::html::Html.render(&r).unwrap(),
        );
    }
    let c = harness::compare::compare(&fixture(), &open, &harness::compare::Options::default());
    let html = harness::compare::html(&c, &fixture(), &open).unwrap();
    drawn += check(&browser, &dir, "compare.html", &html);
    assert!(drawn >= 8, "{drawn} charts checked");
}

#[test]
fn the_empty_chart_check_tells_a_drawn_chart_from_an_empty_one() {
    use harness::report::charts::{BLUE_, Bars, bars};
    let chart = |values: Vec<f64>| {
        let groups = [Bars {
            label: "n".into(),
            color: BLUE_,
            values,
        }];
        bars("x", "y", &["a".into(), "b".into()], &groups).unwrap()
    };
    assert!(data_marks(&chart(vec![3.0, 5.0])) >= 2);
    assert_eq!(
        data_marks(&chart(vec![0.0, 0.0])),
        0,
        "zero-height bars draw nothing"
    );
}
