//! docs/deploy.md: its Kubernetes Indexed Job, Tekton Task and GitHub Actions matrix parse as
//! YAML (PyYAML, python3-yaml) and say what the text promises — N workers, each with its own
//! shard of N, the key from a Secret — and every `bootseal sync` flag they pass is one the real
//! parser accepts; docs/Containerfile builds bootseal on a Debian base.
//!
//! Schema-aware where a validator works offline: the Job against the Kubernetes OpenAPI
//! schemas `kubernetes-validate` bundles, the workflow against the GitHub workflow schema
//! `check-jsonschema` vendors (both from PyPI, pinned, installed once into a venv under
//! target/). Tekton publishes no schema; the Task's steps, which Tekton defines as Kubernetes
//! containers, are validated as the containers of a Pod.

use crate::common;

use common::{bootseal, require_tool, stdout_of};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The pinned validators (kubernetes-validate bundles the schemas up to Kubernetes 1.37).
const VALIDATORS: &[&str] = &["kubernetes-validate==1.37.0", "check-jsonschema==0.39.0"];

/// A venv holding [`VALIDATORS`], made once (python3-venv; pip reaches PyPI the first time).
fn validators() -> PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let _once = MADE.lock().unwrap_or_else(|p| p.into_inner());
    require_tool("python3");
    let venv = common::cache_dir().join("schema-validators");
    let done = venv.join(VALIDATORS.join(" ").replace(['=', ' '], "_"));
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        common::run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        common::run_ok(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(VALIDATORS),
        );
        std::fs::write(&done, b"").unwrap();
    }
    venv.join("bin")
}

/// Runs a validator on `doc` (JSON is YAML); Ok(output) when it accepts it.
fn validate(tool: &str, args: &[&str], doc: &Value) -> Result<String, String> {
    validate_text(tool, args, &serde_json::to_string_pretty(doc).unwrap())
}

/// [`validate`] on YAML text as written (for GitHub's `on:`, which YAML 1.1 parsers such as
/// PyYAML read as `true`).
fn validate_text(tool: &str, args: &[&str], yaml: &str) -> Result<String, String> {
    let dir = common::scratch();
    let file = dir.path().join("doc.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(validators().join(tool))
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The Kubernetes schema check, proven live on a copy broken by `spoil`.
fn assert_kubernetes_valid(doc: &Value, spoil: impl Fn(&mut Value)) {
    let args = ["--strict", "--kubernetes-version", "1.37"];
    let ok = validate("kubernetes-validate", &args, doc);
    assert!(ok.as_ref().is_ok_and(|t| t.contains("passed")), "{ok:?}");
    let mut bad = doc.clone();
    spoil(&mut bad);
    let refused = validate("kubernetes-validate", &args, &bad);
    assert!(refused.is_err(), "a spoiled copy passed: {refused:?}");
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name),
    )
    .unwrap()
}

/// Every ```yaml block of docs/deploy.md as written.
fn yaml_texts() -> Vec<String> {
    let text = doc("deploy.md");
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("\n```").expect("closed yaml block");
        blocks.push(body[..end].to_owned());
        rest = &body[end..];
    }
    blocks
}

/// Every ```yaml block of docs/deploy.md, parsed by PyYAML and handed over as JSON.
fn yaml_blocks() -> Vec<Value> {
    require_tool("python3");
    yaml_texts()
        .iter()
        .map(|b| {
            let mut child = Command::new("python3")
                .args([
                    "-c",
                    "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(b.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "YAML does not parse (python3-yaml):\n{b}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Every `--flag` in `args` is one `bootseal sync --help` lists.
fn assert_sync_flags(args: &[String]) {
    let help = stdout_of(bootseal().args(["sync", "--help"]));
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{name} ")) || help.contains(&format!("{name}\n")),
            "{name} is not a `bootseal sync` flag"
        );
    }
}

fn shard_value(args: &[String]) -> String {
    let at = args.iter().position(|a| a == "--shard").expect("--shard");
    args[at + 1].clone()
}

#[test]
fn kubernetes_indexed_job() {
    let blocks = yaml_blocks();
    let job = blocks.iter().find(|b| b["kind"] == "Job").expect("a Job");
    assert_eq!(job["apiVersion"], "batch/v1");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n));
    let container = &spec["template"]["spec"]["containers"][0];
    let args = strings(&container["args"]);
    assert_eq!(args[0], "sync");
    assert_eq!(shard_value(&args), format!("env:JOB_COMPLETION_INDEX/{n}"));
    assert_sync_flags(&args);
    // --key and --cert point into a volume mounted from a Secret.
    let key = &args[args.iter().position(|a| a == "--key").unwrap() + 1];
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| key.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the key's volume is mounted");
    let volume = spec["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(volume["secret"]["secretName"].is_string(), "{volume}");
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    assert_kubernetes_valid(job, |j| j["spec"]["parallelism"] = "all".into());
}

#[test]
fn tekton_task() {
    let blocks = yaml_blocks();
    let task = blocks.iter().find(|b| b["kind"] == "Task").expect("a Task");
    assert_eq!(task["apiVersion"], "tekton.dev/v1");
    let params: Vec<&str> = task["spec"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let step = &task["spec"]["steps"][0];
    let args = strings(&step["args"]);
    assert_eq!(args[0], "sync");
    assert_sync_flags(&args);
    // Every $(params.X) the step uses is declared, and so is every workspace.
    for a in &args {
        for used in a.split("$(params.").skip(1) {
            let name = used.split(')').next().unwrap();
            assert!(params.contains(&name), "undeclared param {name}");
        }
        for used in a.split("$(workspaces.").skip(1) {
            let name = used.split('.').next().unwrap();
            assert!(
                task["spec"]["workspaces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["name"] == name),
                "undeclared workspace {name}"
            );
        }
    }
    assert_eq!(shard_value(&args), "$(params.shard)/$(params.shards)");

    // Tekton's steps are Kubernetes containers plus Tekton's own keys (none of which the
    // Task uses but `script`, dropped if present): validate them as a Pod's containers.
    let mut containers = task["spec"]["steps"].clone();
    for c in containers.as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("script");
    }
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tekton-steps"},
        "spec": {"containers": containers, "restartPolicy": "Never"},
    });
    assert_kubernetes_valid(&pod, |p| p["spec"]["containers"][0]["args"] = "sync".into());
}

#[test]
fn github_actions_matrix() {
    let blocks = yaml_blocks();
    let wf = blocks
        .iter()
        .find(|b| b.get("jobs").is_some())
        .expect("a workflow");
    let job = &wf["jobs"]["sync"];
    let shards: Vec<u64> = job["strategy"]["matrix"]["shard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = shards.len() as u64;
    assert_eq!(shards, (0..n).collect::<Vec<_>>(), "shards 0..N-1");
    let run = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("bootseal sync"))
        .expect("a bootseal sync step");
    let args: Vec<String> = run.split_whitespace().map(str::to_owned).collect();
    let shard = run
        .split("--shard ")
        .nth(1)
        .and_then(|r| r.split(" --").next())
        .unwrap()
        .trim();
    assert_eq!(shard, format!("${{{{ matrix.shard }}}}/{n}"), "{run}");
    assert_sync_flags(&args);

    let text = yaml_texts()
        .into_iter()
        .find(|t| t.contains("\njobs:"))
        .unwrap();
    let schema = ["--builtin-schema", "vendor.github-workflows"];
    let ok = validate_text("check-jsonschema", &schema, &text);
    assert!(ok.is_ok(), "{ok:?}");
    let runs_on = text
        .lines()
        .find(|l| l.trim_start().starts_with("runs-on:"))
        .unwrap();
    let bad = text.replace(runs_on, &runs_on.replace("runs-on:", "runs-on: 5 #"));
    let refused = validate_text("check-jsonschema", &schema, &bad);
    assert!(
        refused.as_ref().is_err_and(|t| t.contains("runs-on")),
        "{refused:?}"
    );
}

#[test]
fn containerfile_builds_bootseal_on_debian() {
    let text = doc("Containerfile");
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a build and a runtime stage");
    assert!(froms.iter().all(|f| f.contains("bookworm")), "{froms:?}");
    assert!(text.contains("cargo build --release --locked --bin bootseal"));
    assert!(text.contains("COPY --from=build /usr/local/bin/bootseal /usr/local/bin/bootseal"));
    // The toolchain the build stage pins is the crate's rust-version.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        froms[0].contains(&format!("rust:{msrv}-bookworm")),
        "{froms:?} vs {msrv}"
    );
    // The crate links OpenSSL (composefs): the runtime stage installs it.
    assert!(text.contains("libssl3"));
}
