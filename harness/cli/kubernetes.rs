//! `harness kubernetes NAME_OR_FILE --shards N`: prints the manifests of a sharded run — the
//! scenario and the files it reads in a ConfigMap, an Indexed Job of N pods each running
//! `harness run … --shards N` (the index from `JOB_COMPLETION_INDEX`), and a Job that waits for
//! their results and merges them. The plan is made here exactly as `harness run` makes it, so
//! nothing is printed that `run` would refuse (the loopback gate included); and before printing,
//! the pods' command line is parsed by `run`'s own parser against the files as the pods will see
//! them, and must give the same plan.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Parser};

use super::run::{RunArgs, plan_of};
use super::{Cli, Command, exit};
use crate::kubernetes::{
    CONFIG_ROOT, ConfigFile, Manifest, RESULTS_ROOT, TLS_ROOT, check_name, job_name, render,
};
use crate::plan::RunPlan;
use crate::result::Shard;
use crate::scenario::Library;

/// The file every pod runs, under [`CONFIG_ROOT`].
const SCENARIO_FILE: &str = "scenario.toml";
/// Time for scheduling and pulling the image, beside the run's own budget.
const MARGIN: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct KubernetesArgs {
    /// A scenario name (RELIABILITY_STANDARD) or a path to a scenario file.
    #[arg(value_name = "NAME_OR_FILE")]
    pub scenario: String,
    /// How many shards (pods) run the load.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub shards: u32,
    /// The container image, holding the harness binary as its entrypoint.
    #[arg(long, value_name = "IMAGE", default_value = concat!("harness:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The PersistentVolumeClaim the shards write their results to and the merge reads them from
    /// (ReadWriteMany when the pods may land on several nodes).
    #[arg(long, value_name = "CLAIM", default_value = "harness-results")]
    pub results: String,
    /// The Jobs' name (default: the scenario's and the time, e.g. reliability-standard-20261203t101500).
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
    /// The namespace the objects go to (default: kubectl's).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Base URL of the target as the pods reach it, e.g. http://checkout.shop.svc:8080.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The seed every shard shares (default: the scenario's, else drawn now and written into the
    /// manifest).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// When the shards' load begins (RFC 3339): pods started apart wait for it.
    #[arg(long, value_name = "TIME", value_parser = super::run::parse_start_at)]
    pub start_at: Option<SystemTime>,
    /// Allow targets outside loopback: inside a cluster the target always is, so the manifest is
    /// refused without it.
    #[arg(long)]
    pub allow_remote: bool,
    /// A Secret whose keys become the pods' environment, for `{{env.NAME}}` in the scenario
    /// (kubectl create secret generic NAME --from-env-file=FILE).
    #[arg(long, value_name = "SECRET")]
    pub env_secret: Option<String>,
    /// A kubernetes.io/tls Secret holding --client-cert and --client-key for the pods
    /// (kubectl create secret tls NAME --cert FILE --key FILE); a private key is never printed.
    #[arg(long, value_name = "SECRET", requires = "client_cert")]
    pub tls_secret: Option<String>,
    /// Each shard serves live metrics on this port (`run --metrics-listen 0.0.0.0:PORT`), declared
    /// on the container and in prometheus.io/ annotations for a scrape config to find.
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    #[command(flatten)]
    pub tls: super::tls_args::TlsArgs,
    #[command(flatten)]
    pub library: super::VerbLibrary,
}

fn parse_name(text: &str) -> Result<String, String> {
    check_name(text).map(|()| text.to_string())
}

pub fn run(
    dir: Option<&Path>,
    env_file: Option<&Path>,
    args: KubernetesArgs,
) -> anyhow::Result<u8> {
    let manifest = manifest(dir, env_file, &args)?;
    print!("{}", render(&manifest));
    Ok(exit::OK)
}

/// The manifests for `args`, checked: the plan is `run`'s, and the pods' command line gives it.
pub fn manifest(
    dir: Option<&Path>,
    env_file: Option<&Path>,
    args: &KubernetesArgs,
) -> anyhow::Result<Manifest> {
    if env_file.is_some() && args.env_secret.is_none() {
        bail!(
            "--env-file is read here to check the plan, but its values are not put in a manifest: \
             create a Secret from it (kubectl create secret generic NAME --from-env-file=FILE) and \
             pass --env-secret NAME"
        );
    }
    if args.tls.client_cert.is_some() && args.tls_secret.is_none() {
        bail!(
            "--client-cert and --client-key: a private key is not put in a manifest; create a \
             kubernetes.io/tls Secret (kubectl create secret tls NAME --cert CERT --key KEY) and \
             pass --tls-secret NAME beside them"
        );
    }
    let library = Library::open(dir)?;
    let located = library.locate(&args.scenario)?;
    let scenario = library.parse(&located)?;
    let seed = args
        .seed
        .or(scenario.seed)
        .unwrap_or_else(rand::random::<u64>);
    let local = RunArgs {
        seed: Some(seed),
        ..run_args(
            args,
            args.scenario.clone(),
            Shard {
                index: 0,
                count: args.shards,
            },
        )
    };
    let plan = plan_of(dir, &local)?;
    match &plan.endpoint {
        crate::plan::Endpoint::Start(_) => eprintln!(
            "note: no target is given, so each pod runs against a reference target of its own; \
             pass --target URL (as the pods reach it) to test your service"
        ),
        crate::plan::Endpoint::At { url, .. } if crate::net::is_loopback(url) => eprintln!(
            "note: {url} is a loopback address: in a pod that is the pod itself (a sidecar)"
        ),
        crate::plan::Endpoint::At { .. } => {}
    }

    let mut files = vec![ConfigFile {
        path: SCENARIO_FILE.into(),
        text: located.source.text.clone(),
    }];
    let mut renamed = Vec::new();
    shipped_files(&library, &located, &mut files, &mut renamed)?;
    let mut tls_args = Vec::new();
    for (i, ca) in args.tls.ca.iter().enumerate() {
        let path = format!("tls/ca-{i}.pem");
        let text = std::fs::read_to_string(ca)
            .with_context(|| format!("cannot read --ca-cert {}", ca.display()))?;
        renamed.push((ca.display().to_string(), format!("{CONFIG_ROOT}/{path}")));
        tls_args.extend(["--ca-cert".to_string(), format!("{CONFIG_ROOT}/{path}")]);
        files.push(ConfigFile { path, text });
    }
    if let (Some(cert), Some(key)) = (&args.tls.client_cert, &args.tls.client_key) {
        for (flag, local, file) in [
            ("--client-cert", cert, "tls.crt"),
            ("--client-key", key, "tls.key"),
        ] {
            let pod = format!("{TLS_ROOT}/{file}");
            renamed.push((local.display().to_string(), pod.clone()));
            tls_args.extend([flag.to_string(), pod]);
        }
    }

    let name = match &args.name {
        Some(n) => n.clone(),
        None => job_name(&format!("{}-{}", plan.identity.name, stamp())),
    };
    let out_of = |index: &str| format!("{RESULTS_ROOT}/{name}/shard-{index}");
    let mut shard_args = vec![
        "run".to_string(),
        format!("{CONFIG_ROOT}/{SCENARIO_FILE}"),
        "--scenarios".into(),
        CONFIG_ROOT.into(),
        "--shards".into(),
        args.shards.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--out".into(),
        out_of("$(JOB_COMPLETION_INDEX)"),
        "--defer-verdict".into(),
    ];
    if let Some(port) = args.metrics_port {
        shard_args.extend(["--metrics-listen".into(), format!("0.0.0.0:{port}")]);
    }
    shard_args.extend(common_run_args(args));
    shard_args.extend(tls_args);

    let waited = args
        .start_at
        .and_then(|t| t.duration_since(SystemTime::now()).ok())
        .unwrap_or_default();
    let shard_deadline = waited + plan.budget.timeout + MARGIN;
    let merge_wait = shard_deadline + Duration::from_secs(60);
    let mut merge_args = vec!["merge".to_string()];
    merge_args.extend((0..args.shards).map(|i| out_of(&i.to_string())));
    merge_args.extend([
        "--out".into(),
        format!("{RESULTS_ROOT}/{name}/merged"),
        "--wait".into(),
        format!("{}s", merge_wait.as_secs()),
    ]);

    let mut labels = vec![("harness/seed".to_string(), seed.to_string())];
    if label_value(&plan.identity.name) {
        labels.push(("harness/scenario".into(), plan.identity.name.clone()));
    }
    let manifest = Manifest {
        name,
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        shards: args.shards,
        results_claim: args.results.clone(),
        files,
        shard_args,
        merge_args,
        env_secret: args.env_secret.clone(),
        tls_secret: args.tls_secret.clone(),
        shard_deadline,
        merge_deadline: merge_wait + MARGIN,
        labels,
        metrics_port: args.metrics_port,
    };
    let pod = pod_plan(&manifest, 0, args)?;
    let (mine, theirs) = (fingerprint(&plan, &renamed), fingerprint(&pod, &renamed));
    if mine != theirs {
        let (here, pods) = first_difference(&mine, &theirs);
        bail!(
            "internal error: the pods' command line would not run the plan made here (a bug, please \
             report it):\n  here: {here}\n  pods: {pods}"
        );
    }
    Ok(manifest)
}

/// `run`'s arguments for what `args` give, shard `shard`, the scenario named `scenario`.
fn run_args(args: &KubernetesArgs, scenario: String, shard: Shard) -> RunArgs {
    RunArgs {
        scenario,
        target: args.target.clone(),
        out: None,
        seed: args.seed,
        allow_remote: args.allow_remote,
        quiet: false,
        json: false,
        shard: Some(shard),
        shards: None,
        start_at: args.start_at,
        defer_verdict: true,
        metrics_listen: None,
        metrics_linger: None,
        memory_limit: None,
        tls: super::tls_args::TlsArgs {
            ca: args.tls.ca.clone(),
            client_cert: args.tls.client_cert.clone(),
            client_key: args.tls.client_key.clone(),
            tls_server_name: args.tls.tls_server_name.clone(),
            tls_min_version: args.tls.tls_min_version,
            insecure_skip_verify: args.tls.insecure_skip_verify,
            http: args.tls.http,
        },
        library: super::VerbLibrary::default(),
    }
}

/// The flags of `args` that go to every pod as they are.
fn common_run_args(args: &KubernetesArgs) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = &args.target {
        out.extend(["--target".to_string(), t.clone()]);
    }
    if args.allow_remote {
        out.push("--allow-remote".into());
    }
    if let Some(t) = args.start_at {
        out.extend([
            "--start-at".to_string(),
            humantime::format_rfc3339_millis(t).to_string(),
        ]);
    }
    if let Some(n) = &args.tls.tls_server_name {
        out.extend(["--tls-server-name".to_string(), n.clone()]);
    }
    if let Some(v) = args.tls.tls_min_version {
        out.extend(["--tls-min-version".to_string(), v.as_str().into()]);
    }
    if args.tls.insecure_skip_verify {
        out.push("--insecure-skip-verify".into());
    }
    if let Some(v) = args.tls.http {
        out.extend(["--http".to_string(), v.as_str().into()]);
    }
    out
}

/// The files beside the scenario that a pod needs: the procedure it names and the CA files of its
/// `[tls]`, each at the path the scenario gives (relative to it). `renamed` gets each file's path
/// here and in the pods, for comparing the plans.
fn shipped_files(
    library: &Library,
    located: &crate::scenario::Located,
    files: &mut Vec<ConfigFile>,
    renamed: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let raw: toml::Table = toml::from_str(&located.source.text)
        .with_context(|| format!("cannot read {}", located.source.name))?;
    let base = located.base_dir.clone().unwrap_or_default();
    let relative_file = |what: &str, relative: &str| -> anyhow::Result<(ConfigFile, String)> {
        let rel = inside(relative).with_context(|| {
            format!(
                "{what} `{relative}` in {}: a pod can only be given files below the scenario's \
                 folder; give a relative path without `..`",
                located.source.name
            )
        })?;
        let local = base.join(&rel);
        let text = std::fs::read_to_string(&local)
            .with_context(|| format!("cannot read {what} {}", local.display()))?;
        let path = rel.to_string_lossy().replace('\\', "/");
        Ok((ConfigFile { path, text }, local.display().to_string()))
    };
    let mut ship = |(file, here): (ConfigFile, String)| {
        renamed.push((here, format!("{CONFIG_ROOT}/{}", file.path)));
        if !files.iter().any(|f| f.path == file.path) {
            files.push(file);
        }
    };
    let table = |key: &str| raw.get(key).and_then(toml::Value::as_table);
    if let Some(p) = table("target")
        .and_then(|t| t.get("procedure"))
        .and_then(toml::Value::as_str)
    {
        if p.ends_with(".toml") || p.contains('/') {
            ship(relative_file("target.procedure", p)?);
        } else {
            let source = library.procedure_source(located, p)?;
            let file = ConfigFile {
                path: format!("procedures/{p}.toml"),
                text: source.text,
            };
            ship((file, source.name));
        }
    }
    if let Some(tls) = table("tls") {
        if tls.contains_key("client_key") {
            bail!(
                "[tls] client_key in {}: a private key is not put in a manifest; remove \
                 client_cert and client_key from the scenario and pass --client-cert, --client-key \
                 and --tls-secret NAME (a kubernetes.io/tls Secret holding them)",
                located.source.name
            );
        }
        let cas = match tls.get("ca") {
            Some(toml::Value::String(one)) => vec![one.as_str()],
            Some(toml::Value::Array(many)) => many.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        for ca in cas {
            ship(relative_file("tls.ca", ca)?);
        }
    }
    Ok(())
}

/// `text` as a relative path that stays inside its folder.
fn inside(text: &str) -> Option<PathBuf> {
    let path = Path::new(text);
    let ok = !text.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    ok.then(|| path.components().collect())
}

/// The plan the pod of shard `index` makes: its command line parsed by `run`'s own parser, the
/// ConfigMap's files written where the pod would read them (in a folder of our own).
pub fn pod_plan(m: &Manifest, index: u32, args: &KubernetesArgs) -> anyhow::Result<RunPlan> {
    let root = std::env::temp_dir().join(format!(
        "harness-kubernetes-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let planned = (|| {
        for f in &m.files {
            let path = root.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &f.text)?;
        }
        let root_text = root.display().to_string();
        let cert = args
            .tls
            .client_cert
            .as_ref()
            .map(|p| p.display().to_string());
        let key = args
            .tls
            .client_key
            .as_ref()
            .map(|p| p.display().to_string());
        let argv = m.shard_args.iter().map(|a| {
            let a = a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string());
            match a.as_str() {
                _ if a == format!("{TLS_ROOT}/tls.crt") => cert.clone().unwrap_or(a),
                _ if a == format!("{TLS_ROOT}/tls.key") => key.clone().unwrap_or(a),
                _ => a.replace(CONFIG_ROOT, &root_text),
            }
        });
        let cli = Cli::try_parse_from(std::iter::once("harness".to_string()).chain(argv))
            .map_err(|e| anyhow::anyhow!("the pods' command line does not parse: {e}"))?;
        let Command::Run(mut run) = cli.command else {
            bail!("the pods' command line is not `run`");
        };
        // What JOB_COMPLETION_INDEX gives the pod.
        let count = run.shards.take().unwrap_or(1);
        run.shard = Some(Shard { index, count });
        let dir = run.library.scenarios.clone();
        let plan = plan_of(dir.as_deref(), &run)?;
        anyhow::Ok(plan)
    })();
    let _ = std::fs::remove_dir_all(&root);
    planned
}

/// A plan's text with what differs between two equal plans made apart taken out: the run id (each
/// run has its own), and the paths of its files (`renamed`: here → in the pods; a pod's folder
/// written for the comparison reads as [`CONFIG_ROOT`]).
pub fn fingerprint(plan: &RunPlan, renamed: &[(String, String)]) -> String {
    let mut text = format!("{plan:?}").replace(&format!("{:?}", plan.identity.run_id), "\"RUN\"");
    let mut renamed = renamed.to_vec();
    renamed.sort_by_key(|(here, _)| std::cmp::Reverse(here.len()));
    for (here, pod) in renamed {
        text = text.replace(&format!("{here:?}"), &format!("{pod:?}"));
    }
    let temp = std::env::temp_dir().display().to_string();
    let prefix = format!("{temp}/harness-kubernetes-{}-", std::process::id());
    // A path in the folder written for the comparison: `<prefix><nanos>/rest` → CONFIG_ROOT/rest.
    while let Some(at) = text.find(&prefix) {
        let after = &text[at + prefix.len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        text.replace_range(at..at + prefix.len() + digits, CONFIG_ROOT);
    }
    text
}

fn first_difference(a: &str, b: &str) -> (String, String) {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    let start = a[..at].char_indices().rev().nth(60).map_or(0, |(i, _)| i);
    let show = |s: &str| s.get(start..).unwrap_or("").chars().take(160).collect();
    (show(a), show(b))
}

/// A valid label value: at most 63 of letters, digits, `-`, `_`, `.`, starting and ending with an
/// alphanumeric.
fn label_value(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Now, as `20261203t101500`.
fn stamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-', 'Z'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> KubernetesArgs {
        let argv = ["harness", "kubernetes", "RELIABILITY_STANDARD"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Kubernetes(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pod_command_line_that_would_run_another_plan_is_told_apart() {
        let a = args(&["--shards", "2", "--seed", "3"]);
        let m = manifest(None, None, &a).unwrap();
        let plan = pod_plan(&m, 0, &a).unwrap();
        let same = pod_plan(&m, 0, &a).unwrap();
        assert_eq!(fingerprint(&plan, &[]), fingerprint(&same, &[]));
        for (flag, other) in [("--seed", "4"), ("--shards", "3")] {
            let mut changed = m.clone();
            let at = changed.shard_args.iter().position(|x| x == flag).unwrap();
            changed.shard_args[at + 1] = other.into();
            let theirs = pod_plan(&changed, 0, &a).unwrap();
            assert_ne!(fingerprint(&plan, &[]), fingerprint(&theirs, &[]), "{flag}");
        }
        // Another shard of the same manifest is another plan too.
        assert_ne!(
            fingerprint(&plan, &[]),
            fingerprint(&pod_plan(&m, 1, &a).unwrap(), &[])
        );
    }

    #[test]
    fn tls_files_go_in_by_path_and_the_private_key_stays_out() {
        let dir = std::env::temp_dir().join(format!("harness-k8s-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["api.internal".into()]).unwrap();
        let client = rcgen::generate_simple_self_signed(vec!["harness".into()]).unwrap();
        let (ca_file, cert, key) = (dir.join("ca.pem"), dir.join("c.pem"), dir.join("c.key"));
        std::fs::write(&ca_file, ca.cert.pem()).unwrap();
        std::fs::write(&cert, client.cert.pem()).unwrap();
        let key_text = client.signing_key.serialize_pem();
        std::fs::write(&key, &key_text).unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let (ca_file, cert, key) = (path(&ca_file), path(&cert), path(&key));
        let a = args(&[
            "--shards",
            "2",
            "--seed",
            "3",
            "--ca-cert",
            &ca_file,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--tls-secret",
            "harness-client",
            "--tls-server-name",
            "api.internal",
        ]);
        let m = manifest(None, None, &a).unwrap();
        let shipped: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert!(shipped.contains(&"tls/ca-0.pem"), "{shipped:?}");
        let text = render(&m);
        assert!(text.contains("/etc/harness-tls/tls.key"));
        assert!(text.contains("secretName: harness-client"), "{text}");
        let key_body = key_text.lines().nth(1).unwrap();
        assert!(!text.contains(key_body), "the private key is never printed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
