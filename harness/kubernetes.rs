//! The Kubernetes manifests of a sharded run (`harness kubernetes`): a ConfigMap holding the
//! scenario and every file it reads, an Indexed Job whose pods each run one shard
//! (`JOB_COMPLETION_INDEX` picks it), and a Job that waits for the shards' results and merges them.
//! What each pod runs is decided by the command line (`cli::kubernetes`), from the same plan as
//! `harness run`; this module only writes it down as YAML.

use std::time::Duration;

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

/// Where the ConfigMap is mounted in every pod.
pub const CONFIG_ROOT: &str = "/etc/harness";
/// Where the TLS Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`) is mounted, when there is one.
pub const TLS_ROOT: &str = "/etc/harness-tls";
/// Where the results volume is mounted.
pub const RESULTS_ROOT: &str = "/results";
/// The container's name in every pod (the pod failure policy names it).
pub const CONTAINER: &str = "harness";
/// The longest name a Job may have and still name its pods (`NAME-INDEX-xxxxx`) within 63
/// characters; the merge Job adds `-merge`.
const MAX_NAME: usize = 46;

/// A file the pods read, at `path` under [`CONFIG_ROOT`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// Relative, `/`-separated, never `..`.
    pub path: String,
    pub text: String,
}

/// Everything the manifests say.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The Jobs' and the ConfigMap's name (a DNS label, see [`job_name`]).
    pub name: String,
    pub namespace: Option<String>,
    pub image: String,
    pub shards: u32,
    /// The PersistentVolumeClaim the results go to (ReadWriteMany when pods land on many nodes).
    pub results_claim: String,
    pub files: Vec<ConfigFile>,
    /// What each shard's container runs (`run …`), with `$(JOB_COMPLETION_INDEX)` where the index
    /// goes; Kubernetes puts it in.
    pub shard_args: Vec<String>,
    /// What the merge container runs (`merge …`).
    pub merge_args: Vec<String>,
    /// A Secret whose keys become environment variables (`{{env.NAME}}` in the scenario).
    pub env_secret: Option<String>,
    /// A `kubernetes.io/tls` Secret holding the client certificate and key.
    pub tls_secret: Option<String>,
    /// How long a shard pod may live: the plan's budget, the wait for the start time and a margin.
    pub shard_deadline: Duration,
    /// How long the merge pod may live: as long as the shards, and a margin.
    pub merge_deadline: Duration,
    /// Labels every object carries (scenario, seed), beside the app's.
    pub labels: Vec<(String, String)>,
    /// The port each shard serves its live metrics on (`--metrics-listen 0.0.0.0:PORT` is then
    /// in `shard_args`): declared on the container and in the usual scrape annotations.
    pub metrics_port: Option<u16>,
}

/// A DNS label made of `text`: lower case letters, digits and `-`, starting with a letter, at most
/// [`MAX_NAME`] characters, e.g. `reliability-standard-20261203t101500`.
pub fn job_name(text: &str) -> String {
    let mut name = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let mut name: String = name.chars().take(MAX_NAME).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        "harness".into()
    } else {
        name
    }
}

/// Why a name given with `--name` cannot name the Jobs.
pub fn check_name(name: &str) -> Result<(), String> {
    if name == job_name(name) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name a Job: use at most {MAX_NAME} lower-case letters, digits and \
             `-`, starting with a letter and ending with a letter or digit (e.g. `{}`)",
            job_name(name)
        ))
    }
}

/// The ConfigMap key of the `i`-th file: keys allow no `/`, so the path goes to the volume's items.
fn key_of(i: usize, path: &str) -> String {
    let tail: String = path
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    format!("f{i}-{tail}")
}

/// The manifests as one YAML stream: the ConfigMap, the shards' Indexed Job, the merge Job.
pub fn render(m: &Manifest) -> String {
    let mut out = String::new();
    out.push_str(&header(m));
    for doc in [config_map(m), shards_job(m), merge_job(m)] {
        let mut text = String::new();
        let mut emitter = YamlEmitter::new(&mut text);
        emitter.multiline_strings(true);
        // Emitting into a String cannot fail: the emitter's only errors are the writer's.
        if emitter.dump(&doc).is_ok() {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

fn header(m: &Manifest) -> String {
    format!(
        "# {shards} shards of one run, merged exactly (harness kubernetes).\n\
         # Results: the PersistentVolumeClaim `{claim}` (ReadWriteMany when the pods may land on\n\
         # several nodes), at {root}/{name}/shard-I and {root}/{name}/merged.\n\
         # Needs Kubernetes 1.29 or later (backoffLimitPerIndex, podFailurePolicy).\n\
         # The verdict is the merge Job's: kubectl wait --for=condition=complete job/{name}-merge\n",
        shards = m.shards,
        claim = m.results_claim,
        root = RESULTS_ROOT,
        name = m.name,
    )
}

fn s(text: &str) -> Yaml {
    Yaml::String(text.to_string())
}

fn int(n: impl Into<i64>) -> Yaml {
    Yaml::Integer(n.into())
}

fn map<const N: usize>(pairs: [(&str, Yaml); N]) -> Yaml {
    let mut h = Hash::new();
    for (k, v) in pairs {
        h.insert(s(k), v);
    }
    Yaml::Hash(h)
}

fn seconds(d: Duration) -> Yaml {
    int(i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX))
}

fn labels(m: &Manifest, component: &str) -> Yaml {
    let mut h = Hash::new();
    h.insert(s("app.kubernetes.io/name"), s("harness"));
    h.insert(s("app.kubernetes.io/instance"), s(&m.name));
    h.insert(s("app.kubernetes.io/component"), s(component));
    for (k, v) in &m.labels {
        h.insert(s(k), s(v));
    }
    Yaml::Hash(h)
}

fn metadata(m: &Manifest, name: &str, component: &str) -> Yaml {
    let mut h = Hash::new();
    h.insert(s("name"), s(name));
    if let Some(ns) = &m.namespace {
        h.insert(s("namespace"), s(ns));
    }
    h.insert(s("labels"), labels(m, component));
    Yaml::Hash(h)
}

fn config_map(m: &Manifest) -> Yaml {
    let mut data = Hash::new();
    for (i, f) in m.files.iter().enumerate() {
        data.insert(s(&key_of(i, &f.path)), s(&f.text));
    }
    map([
        ("apiVersion", s("v1")),
        ("kind", s("ConfigMap")),
        ("metadata", metadata(m, &m.name, "config")),
        ("data", Yaml::Hash(data)),
    ])
}

fn volumes(m: &Manifest, with_config: bool) -> (Yaml, Yaml) {
    let mut volumes = vec![map([
        ("name", s("results")),
        (
            "persistentVolumeClaim",
            map([("claimName", s(&m.results_claim))]),
        ),
    ])];
    let mut mounts = vec![map([
        ("name", s("results")),
        ("mountPath", s(RESULTS_ROOT)),
    ])];
    if with_config {
        let items = m
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| map([("key", s(&key_of(i, &f.path))), ("path", s(&f.path))]))
            .collect();
        volumes.push(map([
            ("name", s("config")),
            (
                "configMap",
                map([("name", s(&m.name)), ("items", Yaml::Array(items))]),
            ),
        ]));
        mounts.push(map([
            ("name", s("config")),
            ("mountPath", s(CONFIG_ROOT)),
            ("readOnly", Yaml::Boolean(true)),
        ]));
        if let Some(secret) = &m.tls_secret {
            volumes.push(map([
                ("name", s("tls")),
                ("secret", map([("secretName", s(secret))])),
            ]));
            mounts.push(map([
                ("name", s("tls")),
                ("mountPath", s(TLS_ROOT)),
                ("readOnly", Yaml::Boolean(true)),
            ]));
        }
    }
    (Yaml::Array(volumes), Yaml::Array(mounts))
}

fn container(m: &Manifest, args: &[String], mounts: Yaml, with_env: bool) -> Yaml {
    let mut h = Hash::new();
    h.insert(s("name"), s(CONTAINER));
    h.insert(s("image"), s(&m.image));
    h.insert(s("args"), Yaml::Array(args.iter().map(|a| s(a)).collect()));
    h.insert(s("workingDir"), s(RESULTS_ROOT));
    if with_env && let Some(port) = m.metrics_port {
        h.insert(
            s("ports"),
            Yaml::Array(vec![map([
                ("name", s("metrics")),
                ("containerPort", int(port)),
            ])]),
        );
    }
    if with_env && let Some(secret) = &m.env_secret {
        h.insert(
            s("envFrom"),
            Yaml::Array(vec![map([("secretRef", map([("name", s(secret))]))])]),
        );
    }
    h.insert(s("volumeMounts"), mounts);
    Yaml::Hash(h)
}

/// A pod template of one container, never restarted in place.
fn template(m: &Manifest, component: &str, container: Yaml, volumes: Yaml) -> Yaml {
    let mut metadata = Hash::new();
    metadata.insert(s("labels"), labels(m, component));
    if let (Some(port), "shard") = (m.metrics_port, component) {
        metadata.insert(
            s("annotations"),
            map([
                ("prometheus.io/scrape", s("true")),
                ("prometheus.io/port", s(&port.to_string())),
                ("prometheus.io/path", s("/metrics")),
            ]),
        );
    }
    map([
        ("metadata", Yaml::Hash(metadata)),
        (
            "spec",
            map([
                ("restartPolicy", s("Never")),
                ("containers", Yaml::Array(vec![container])),
                ("volumes", volumes),
            ]),
        ),
    ])
}

fn shards_job(m: &Manifest) -> Yaml {
    let (volumes, mounts) = volumes(m, true);
    let spec = map([
        ("completionMode", s("Indexed")),
        ("completions", int(m.shards)),
        ("parallelism", int(m.shards)),
        // A shard that fails is not run again (its iterations would start late and twice); the
        // others go on, and the merge says what is missing.
        ("backoffLimitPerIndex", int(0)),
        ("activeDeadlineSeconds", seconds(m.shard_deadline)),
        (
            "podFailurePolicy",
            map([(
                "rules",
                Yaml::Array(vec![
                    // Exit 2: the scenario or the command is invalid, and is so in every pod.
                    map([
                        ("action", s("FailJob")),
                        (
                            "onExitCodes",
                            map([
                                ("containerName", s(CONTAINER)),
                                ("operator", s("In")),
                                ("values", Yaml::Array(vec![int(2)])),
                            ]),
                        ),
                    ]),
                    // A pod evicted or preempted says nothing of the target.
                    map([
                        ("action", s("Ignore")),
                        (
                            "onPodConditions",
                            Yaml::Array(vec![map([("type", s("DisruptionTarget"))])]),
                        ),
                    ]),
                ]),
            )]),
        ),
        (
            "template",
            template(
                m,
                "shard",
                container(m, &m.shard_args, mounts, true),
                volumes,
            ),
        ),
    ]);
    map([
        ("apiVersion", s("batch/v1")),
        ("kind", s("Job")),
        ("metadata", metadata(m, &m.name, "shards")),
        ("spec", spec),
    ])
}

fn merge_job(m: &Manifest) -> Yaml {
    let (volumes, mounts) = volumes(m, false);
    let name = format!("{}-merge", m.name);
    let spec = map([
        // The merge's exit code is the run's verdict (1: a threshold failed): not retried.
        ("backoffLimit", int(0)),
        ("activeDeadlineSeconds", seconds(m.merge_deadline)),
        (
            "template",
            template(
                m,
                "merge",
                container(m, &m.merge_args, mounts, false),
                volumes,
            ),
        ),
    ]);
    map([
        ("apiVersion", s("batch/v1")),
        ("kind", s("Job")),
        ("metadata", metadata(m, &name, "merge")),
        ("spec", spec),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::YamlLoader;

    fn manifest() -> Manifest {
        Manifest {
            name: "reliability-standard".into(),
            namespace: Some("load".into()),
            image: "registry.example/harness:1".into(),
            shards: 3,
            results_claim: "results".into(),
            files: vec![
                ConfigFile {
                    path: "scenario.toml".into(),
                    text: "name = \"X\"\n# a: b\n  indented: \"quoted\" ---\n".into(),
                },
                ConfigFile {
                    path: "procedures/handoff.toml".into(),
                    text: "no newline at the end: yes".into(),
                },
            ],
            shard_args: vec![
                "run".into(),
                "/etc/harness/scenario.toml".into(),
                "--shards".into(),
                "3".into(),
                "--out".into(),
                "/results/x/shard-$(JOB_COMPLETION_INDEX)".into(),
            ],
            merge_args: vec!["merge".into(), "--wait".into(), "90s".into()],
            env_secret: Some("tokens".into()),
            tls_secret: None,
            shard_deadline: Duration::from_secs(120),
            merge_deadline: Duration::from_secs(720),
            labels: vec![("harness/seed".into(), "7".into())],
            metrics_port: Some(9464),
        }
    }

    #[test]
    fn the_stream_parses_back_to_what_was_meant() {
        let m = manifest();
        let docs = YamlLoader::load_from_str(&render(&m)).unwrap();
        assert_eq!(docs.len(), 3);
        let cm = &docs[0];
        assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
        assert_eq!(cm["metadata"]["namespace"].as_str(), Some("load"));
        let job = &docs[1];
        let pod = &job["spec"]["template"]["spec"];
        let items = pod["volumes"][1]["configMap"]["items"].as_vec().unwrap();
        // Every file comes back byte for byte at its path.
        for (f, item) in m.files.iter().zip(items) {
            assert_eq!(item["path"].as_str(), Some(f.path.as_str()));
            let key = item["key"].as_str().unwrap();
            assert_eq!(cm["data"][key].as_str(), Some(f.text.as_str()), "{key}");
        }
        assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
        assert_eq!(job["spec"]["completions"].as_i64(), Some(3));
        assert_eq!(job["spec"]["activeDeadlineSeconds"].as_i64(), Some(120));
        let args: Vec<&str> = pod["containers"][0]["args"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args, m.shard_args);
        // "3" stays a string: args are strings, and an integer there is refused by the API.
        assert!(pod["containers"][0]["args"][3].as_str().is_some());
        assert_eq!(
            pod["containers"][0]["envFrom"][0]["secretRef"]["name"].as_str(),
            Some("tokens")
        );
        let merge = &docs[2];
        assert_eq!(
            merge["metadata"]["name"].as_str(),
            Some("reliability-standard-merge")
        );
        assert_eq!(
            pod["containers"][0]["ports"][0]["containerPort"].as_i64(),
            Some(9464)
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"].as_str(),
            Some("9464")
        );
        assert_eq!(merge["spec"]["backoffLimit"].as_i64(), Some(0));
        assert!(
            merge["spec"]["template"]["spec"]["containers"][0]["envFrom"].is_badvalue(),
            "the merge reads no secrets"
        );
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(
            job_name("RELIABILITY_STANDARD-20261203T101500Z"),
            "reliability-standard-20261203t101500z"
        );
        assert_eq!(job_name("__9 lives__"), "lives");
        assert_eq!(job_name("???"), "harness");
        assert_eq!(job_name(&"a".repeat(80)).len(), MAX_NAME);
        assert!(check_name("ok-name-1").is_ok());
        let e = check_name("Bad_Name").unwrap_err();
        assert!(e.contains("bad-name"), "{e}");
    }
}
