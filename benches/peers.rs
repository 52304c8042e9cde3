//! The harness beside the load generators users compare it with, in one pass on this machine: the
//! harness binary, oha and wrk each run as a child process against the same target, and what each
//! child cost is read from the kernel when it ends (`wait4`: user + system CPU, peak resident
//! memory), so nothing of the target or of this program is counted against a client.
//!
//! Cases: a closed loop at 50 connections (requests per client CPU-second, p50); an open loop at
//! 2,000/s for 10 s (client CPU-seconds, p50, late starts); an open loop at 200/s against a target
//! that stalls one request in five for a second (peak resident memory). The target is nginx
//! (`return 200`) when it is installed, else a minimal server child of this binary; the stalling
//! target is always the child. Peers missing from the machine are said to be missing, and their
//! ratios left out: `cargo install --locked oha`, `apt-get install wrk nginx-light`.
//!
//! Run with `cargo bench --bench peers`. `PEERS_ROUNDS` (default 2) sets how many times each case
//! runs per client, alternating; the median is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const CONNECTIONS: u32 = 50;
const CLOSED_REQUESTS: u64 = 500_000;
const OPEN_RATE: u64 = 2000;
const STALL_RATE: u64 = 200;
const SECONDS: u64 = 10;

fn main() {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("server") => return serve(false),
        Ok("stalling") => return serve(true),
        Ok("bare") => return bare_hyper(),
        _ => {}
    }
    let rounds: usize = std::env::var("PEERS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2)
        .max(1);
    let dir = std::env::temp_dir().join(format!("bench-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_harness"));
    let oha = which("oha");
    let wrk = which("wrk");

    let (target, target_name) = match Nginx::start(&dir) {
        Some(n) => {
            let url = n.url.clone();
            (Target::Nginx(n), format!("nginx `return 200` at {url}"))
        }
        None => {
            let (child, url) = common::spawn_role("server");
            (
                Target::Child(child, url.clone()),
                format!("a minimal hyper server child at {url} (nginx is not installed)"),
            )
        }
    };
    let url = target.url().to_string();
    println!("# harness beside its peers, {}", today());
    println!(
        "target: {target_name}; {} CPU(s); harness {}; oha: {}; wrk: {}",
        std::thread::available_parallelism().map_or(1, usize::from),
        env!("CARGO_PKG_VERSION"),
        oha.as_deref().map_or("not installed".into(), version),
        wrk.as_deref().map_or("not installed".into(), version),
    );

    // 1. Closed loop.
    let closed = scenario(
        &dir,
        "closed",
        &format!(
            "[load]\nmodel = \"closed\"\niterations = {CLOSED_REQUESTS}\nconcurrency = {CONNECTIONS}\n"
        ),
    );
    let mut h = Vec::new();
    let mut o = Vec::new();
    let mut w = Vec::new();
    let mut b = Vec::new();
    for _ in 0..rounds {
        h.push(run_harness(&harness, &closed, &url, &dir));
        b.push(run_bare(&url));
        if let Some(oha) = &oha {
            o.push(run_oha(
                oha,
                &url,
                &[
                    "-c",
                    &CONNECTIONS.to_string(),
                    "-n",
                    &CLOSED_REQUESTS.to_string(),
                ],
            ));
        }
        if let Some(wrk) = &wrk {
            w.push(run_wrk(wrk, &url));
        }
    }
    println!("\n## closed loop, {CONNECTIONS} connections (median of {rounds})");
    println!(
        "| client | requests/s | requests per client CPU-second | p50 ms | mean ms | peak RSS MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let hm = Figures::median(&h);
    hm.row("harness");
    let bm = Figures::median(&b);
    bm.row("bare hyper loop");
    let om = (!o.is_empty()).then(|| Figures::median(&o));
    let wm = (!w.is_empty()).then(|| Figures::median(&w));
    if let Some(m) = &om {
        m.row("oha");
    }
    if let Some(m) = &wm {
        m.row("wrk -t1");
    }
    println!(
        "harness / bare hyper loop: {:.2}x requests per CPU-second; p50 {:+.3} ms, mean {:+.3} ms",
        hm.per_cpu() / bm.per_cpu(),
        hm.p50_ms - bm.p50_ms,
        hm.mean_ms - bm.mean_ms
    );
    if let Some(m) = &om {
        println!(
            "harness / oha: {:.2}x requests per CPU-second; p50 {:+.3} ms, mean {:+.3} ms",
            hm.per_cpu() / m.per_cpu(),
            hm.p50_ms - m.p50_ms,
            hm.mean_ms - m.mean_ms
        );
    }
    if let Some(m) = &wm {
        println!(
            "harness / wrk: {:.2}x requests per CPU-second",
            hm.per_cpu() / m.per_cpu()
        );
    }

    // 2. Open loop at 2,000/s.
    let open = scenario(
        &dir,
        "open",
        &format!(
            "[load]\nmodel = \"open\"\nrate = \"{OPEN_RATE}/s\"\nduration = \"{SECONDS}s\"\nmax_in_flight = {CONNECTIONS}\n"
        ),
    );
    let (h, o) = open_rounds(
        (&harness, oha.as_deref()),
        (&open, &url, &dir),
        (CONNECTIONS, OPEN_RATE),
        rounds,
    );
    println!("\n## open loop, {OPEN_RATE}/s for {SECONDS} s (median of {rounds})");
    println!("| client | requests | client CPU-seconds | p50 ms | mean ms | late | peak RSS MiB |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let hm = Figures::median(&h);
    println!(
        "| harness | {:.0} | {:.2} | {:.3} | {:.3} | {} | {:.0} |",
        hm.requests,
        hm.cpu_s,
        hm.p50_ms,
        hm.mean_ms,
        hm.late.map_or("?".into(), |l| l.to_string()),
        hm.rss_mib
    );
    if !o.is_empty() {
        let om = Figures::median(&o);
        println!(
            "| oha | {:.0} | {:.2} | {:.3} | {:.3} | (not measured) | {:.0} |",
            om.requests, om.cpu_s, om.p50_ms, om.mean_ms, om.rss_mib
        );
        println!(
            "harness / oha: {:.2}x the CPU; p50 {:+.3} ms",
            hm.cpu_s / om.cpu_s,
            hm.p50_ms - om.p50_ms
        );
    }
    drop(target);

    // 3. Memory against a target that stalls.
    let (stalling, stall_url) = common::spawn_role("stalling");
    let stall = scenario(
        &dir,
        "stall",
        &format!(
            "[load]\nmodel = \"open\"\nrate = \"{STALL_RATE}/s\"\nduration = \"{SECONDS}s\"\nmax_in_flight = 1000\n"
        ),
    );
    let (h, o) = open_rounds(
        (&harness, oha.as_deref()),
        (&stall, &stall_url, &dir),
        (1000, STALL_RATE),
        rounds,
    );
    Target::Child(stalling, stall_url).stop();
    println!(
        "\n## open loop, {STALL_RATE}/s for {SECONDS} s, one request in five stalled 1 s (median of {rounds})"
    );
    let hm = Figures::median(&h);
    print!("harness peak resident memory {:.0} MiB", hm.rss_mib);
    if !o.is_empty() {
        let om = Figures::median(&o);
        print!(
            "; oha {:.0} MiB ({:.1}x)",
            om.rss_mib,
            hm.rss_mib / om.rss_mib
        );
    }
    println!();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rounds` of an open loop at `rate`, the harness (running `scenario`) and oha (when installed) in
/// turn, against `url`.
fn open_rounds(
    (harness, oha): (&Path, Option<&Path>),
    (scenario, url, dir): (&Path, &str, &Path),
    (connections, rate): (u32, u64),
    rounds: usize,
) -> (Vec<Figures>, Vec<Figures>) {
    let (mut h, mut o) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        h.push(run_harness(harness, scenario, url, dir));
        if let Some(oha) = oha {
            o.push(run_oha(
                oha,
                url,
                &[
                    "-c",
                    &connections.to_string(),
                    "-q",
                    &rate.to_string(),
                    "-z",
                    &format!("{SECONDS}s"),
                ],
            ));
        }
    }
    (h, o)
}

/// What one client run cost and measured.
#[derive(Debug, Clone, Default)]
struct Figures {
    requests: f64,
    wall_s: f64,
    cpu_s: f64,
    p50_ms: f64,
    mean_ms: f64,
    rss_mib: f64,
    late: Option<u64>,
}

impl Figures {
    fn per_cpu(&self) -> f64 {
        self.requests / self.cpu_s
    }

    /// The median of each figure on its own.
    fn median(runs: &[Figures]) -> Figures {
        let m = |f: fn(&Figures) -> f64| common::median(runs.iter().map(f).collect()).1;
        Figures {
            requests: m(|f| f.requests),
            wall_s: m(|f| f.wall_s),
            cpu_s: m(|f| f.cpu_s),
            p50_ms: m(|f| f.p50_ms),
            mean_ms: m(|f| f.mean_ms),
            rss_mib: m(|f| f.rss_mib),
            late: runs.iter().filter_map(|f| f.late).max(),
        }
    }

    fn row(&self, name: &str) {
        println!(
            "| {name} | {:.0} | {:.0} | {:.3} | {:.3} | {:.0} |",
            self.requests / self.wall_s,
            self.per_cpu(),
            self.p50_ms,
            self.mean_ms,
            self.rss_mib
        );
    }
}

/// A child's CPU and peak memory, from the kernel when it exits.
struct Usage {
    wall_s: f64,
    cpu_s: f64,
    rss_mib: f64,
    stdout: String,
}

fn run_child(mut cmd: Command) -> Usage {
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also reports its CPU and peak memory"
    )]
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} starts: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.expect("piped");
    let mut err = child.stderr.expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our own child's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 on {cmd:?}");
    let wall_s = started.elapsed().as_secs_f64();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        eprintln!("{cmd:?} failed ({status}): {stderr}");
    }
    Usage {
        wall_s,
        cpu_s: secs(usage.ru_utime) + secs(usage.ru_stime),
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stdout,
    }
}

/// A scenario file with a single `GET /` against the command line's target and `load` (a closed
/// load runs as the reliability suite, the performance suite asks for an open one).
fn scenario(dir: &Path, name: &str, load: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let suite = if load.contains("\"closed\"") {
        "reliability"
    } else {
        "performance"
    };
    let text = format!(
        "name = \"peers_{name}\"\nsuite = \"{suite}\"\ntimeout = \"2m\"\niteration_timeout = \"10s\"\n\
         [target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n{load}"
    );
    std::fs::write(&path, text).expect("the scenario is written");
    path
}

fn run_harness(harness: &Path, scenario: &Path, url: &str, dir: &Path) -> Figures {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(harness);
    cmd.arg("run")
        .arg(scenario)
        .args(["--target", url, "--out"])
        .arg(&out)
        .arg("--quiet");
    let u = run_child(cmd);
    let text = std::fs::read_to_string(out.join("result.json"))
        .unwrap_or_else(|e| panic!("the harness wrote result.json ({e}): {}", u.stdout));
    let v: serde_json::Value = serde_json::from_str(&text).expect("result.json is JSON");
    Figures {
        requests: v["totals"]["succeeded"].as_f64().unwrap_or(0.0),
        wall_s: u.wall_s,
        cpu_s: u.cpu_s,
        p50_ms: v["metrics"]["latency_ms"]["p50"]
            .as_f64()
            .unwrap_or(f64::NAN),
        mean_ms: v["metrics"]["latency_ms"]["mean"]
            .as_f64()
            .unwrap_or(f64::NAN),
        rss_mib: u.rss_mib,
        late: v["metrics"]["schedule"]["late"].as_u64(),
    }
}

fn run_oha(oha: &Path, url: &str, args: &[&str]) -> Figures {
    let mut cmd = Command::new(oha);
    cmd.args(args)
        .args(["--no-tui", "--output-format", "json", url]);
    let u = run_child(cmd);
    let v: serde_json::Value = serde_json::from_str(&u.stdout)
        .unwrap_or_else(|e| panic!("oha printed JSON ({e}): {}", u.stdout));
    let ok: f64 = v["statusCodeDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(code, _)| code.starts_with('2'))
                .filter_map(|(_, n)| n.as_f64())
                .sum()
        })
        .unwrap_or(0.0);
    Figures {
        requests: ok,
        wall_s: u.wall_s,
        cpu_s: u.cpu_s,
        p50_ms: v["latencyPercentiles"]["p50"].as_f64().unwrap_or(f64::NAN) * 1e3,
        mean_ms: v["summary"]["average"].as_f64().unwrap_or(f64::NAN) * 1e3,
        rss_mib: u.rss_mib,
        late: None,
    }
}

fn run_wrk(wrk: &Path, url: &str) -> Figures {
    let mut cmd = Command::new(wrk);
    cmd.args([
        "-t1",
        "-c",
        &CONNECTIONS.to_string(),
        "-d",
        &format!("{SECONDS}s"),
        "--latency",
        url,
    ]);
    let u = run_child(cmd);
    // "  123456 requests in 10.00s, ..." and "     50%  123.00us"
    let requests = u
        .stdout
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let p50_ms = u
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("50%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(f64::NAN, wrk_millis);
    // "    Latency   512.00us  ..." (the thread's average first)
    let mean_ms = u
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Latency"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(f64::NAN, wrk_millis);
    Figures {
        requests,
        wall_s: u.wall_s,
        cpu_s: u.cpu_s,
        p50_ms,
        mean_ms,
        rss_mib: u.rss_mib,
        late: None,
    }
}

/// The bare loop, in a child of its own like the other clients: `CONNECTIONS` tasks, each on its
/// own hyper HTTP/1.1 connection, sending `GET /` and reading every answer to its end.
fn run_bare(url: &str) -> Figures {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.env("BENCH_ROLE", "bare").env("BENCH_URL", url);
    let u = run_child(cmd);
    let mut fields = u
        .stdout
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    let mut next = || fields.next().unwrap_or(f64::NAN);
    Figures {
        requests: next(),
        p50_ms: next(),
        mean_ms: next(),
        wall_s: u.wall_s,
        cpu_s: u.cpu_s,
        rss_mib: u.rss_mib,
        late: None,
    }
}

fn bare_hyper() {
    use http_body_util::{BodyExt, Empty};
    let url: url::Url = std::env::var("BENCH_URL")
        .expect("BENCH_URL")
        .parse()
        .expect("a URL");
    let addr = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port_or_known_default().expect("a port")
    );
    let host = addr.clone();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let hists = rt.block_on(async move {
        let per = CLOSED_REQUESTS / u64::from(CONNECTIONS);
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let (addr, host) = (addr.clone(), host.clone());
            tasks.push(tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(&addr)
                    .await
                    .expect("connects");
                tcp.set_nodelay(true).expect("nodelay");
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await
                        .expect("a handshake");
                tokio::spawn(conn);
                let mut hist = harness::metrics::histogram::new_histogram();
                for _ in 0..per {
                    let started = Instant::now();
                    sender.ready().await.expect("ready");
                    let req = hyper::Request::get("/")
                        .header(hyper::header::HOST, host.as_str())
                        .body(Empty::<bytes::Bytes>::new())
                        .expect("a request");
                    let resp = sender.send_request(req).await.expect("an answer");
                    assert!(resp.status().is_success());
                    let _ = resp.into_body().collect().await.expect("a body");
                    harness::metrics::histogram::record(&mut hist, started.elapsed());
                }
                hist
            }));
        }
        let mut all = harness::metrics::histogram::new_histogram();
        for t in tasks {
            harness::metrics::histogram::merge(&mut all, &t.await.expect("a task"));
        }
        all
    });
    println!(
        "{} {} {}",
        hists.len(),
        hists.value_at_quantile(0.5) as f64 / 1e3,
        hists.mean() / 1e3
    );
}

/// wrk's `123.45us`, `1.20ms`, `2.00s` in milliseconds.
fn wrk_millis(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => f64::NAN,
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(home)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn version(path: &Path) -> String {
    let out = Command::new(path).arg("--version").output();
    let text = out
        .map(|o| {
            let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            t
        })
        .unwrap_or_default();
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("unknown version")
        .trim()
        .to_string()
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

enum Target {
    Nginx(Nginx),
    Child(std::process::Child, String),
}

impl Target {
    fn url(&self) -> &str {
        match self {
            Target::Nginx(n) => &n.url,
            Target::Child(_, u) => u,
        }
    }

    fn stop(self) {
        drop(self);
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::Child(child, _) = self {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// nginx answering `200` on a port of its own, from a configuration in our folder.
struct Nginx {
    child: std::process::Child,
    url: String,
}

impl Nginx {
    fn start(dir: &Path) -> Option<Self> {
        let bin = which("nginx").or_else(|| {
            let p = PathBuf::from("/usr/sbin/nginx");
            p.is_file().then_some(p)
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\nerror_log {err} error;\n\
                 events {{ worker_connections 4096; }}\nhttp {{ access_log off;\n\
                 client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};\n\
                 uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
                 server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;\n\
                 location / {{ return 200 \"ok\"; }} }} }}\n",
                pid = dir.join("nginx.pid").display(),
                err = dir.join("nginx-error.log").display(),
                tmp = dir.display(),
            ),
        )
        .ok()?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Nginx { child, url });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server child: `GET /` answers `ok`, at once, or (stalling) one request in five after a
/// second. Stops when stdin closes.
fn serve(stalling: bool) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        println!("http://{}/", listener.local_addr().expect("an address"));
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                if stalling && COUNT.fetch_add(1, Ordering::Relaxed) % 5 == 4 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                "ok"
            }),
        );
        axum::serve(listener, router)
            .with_graceful_shutdown(common::stdin_closed())
            .await
            .expect("the server runs");
    });
}
