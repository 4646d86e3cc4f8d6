//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with a
//! fresh storage directory, plain, with htpasswd basic auth, with TLS (test CA + leaf), or with
//! bearer tokens from tests/tools/token_server.py; and skopeo to load and read images.

use super::{require_tool, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "testuser";
pub const PASS: &str = "testpass";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Plain,
    Htpasswd,
    Tls,
    Token,
}

/// A running registry; stopped (and its files removed) on drop.
pub struct Registry {
    pub variant: Variant,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub dir: tempfile::TempDir,
    /// Directory with `ca.crt` for `--cert-dir` (TLS only).
    pub cert_dir: Option<PathBuf>,
    pub log: PathBuf,
    pub token_log: Option<PathBuf>,
    children: Vec<Child>,
}

fn openssl(args: &[&str], dir: &Path) {
    run_ok(
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null()),
    );
}

impl Registry {
    pub fn start(variant: Variant) -> Registry {
        require_tool("docker-registry");
        require_tool("skopeo");
        let dir = tempfile::Builder::new()
            .prefix("bootseal-registry-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).unwrap();
        let mut children = Vec::new();
        let mut extra = String::new();
        let mut cert_dir = None;
        let mut token_log = None;
        match variant {
            Variant::Plain => {}
            Variant::Htpasswd => {
                require_tool("htpasswd");
                let out = run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASS]));
                std::fs::write(d.join("htpasswd"), out.stdout).unwrap();
                extra = format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    d.join("htpasswd").display()
                );
            }
            Variant::Tls => {
                require_tool("openssl");
                openssl(
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=bootseal test CA",
                        "-addext",
                        "basicConstraints=critical,CA:TRUE",
                        "-addext",
                        "keyUsage=critical,keyCertSign,cRLSign",
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.crt",
                    ],
                    d,
                );
                openssl(
                    &[
                        "req",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-subj",
                        "/CN=127.0.0.1",
                        "-keyout",
                        "tls.key",
                        "-out",
                        "tls.csr",
                    ],
                    d,
                );
                std::fs::write(d.join("leaf.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
                openssl(
                    &[
                        "x509",
                        "-req",
                        "-in",
                        "tls.csr",
                        "-CA",
                        "ca.crt",
                        "-CAkey",
                        "ca.key",
                        "-CAcreateserial",
                        "-days",
                        "2",
                        "-extfile",
                        "leaf.ext",
                        "-out",
                        "tls.crt",
                    ],
                    d,
                );
                let certs = d.join("certs");
                std::fs::create_dir_all(&certs).unwrap();
                std::fs::copy(d.join("ca.crt"), certs.join("ca.crt")).unwrap();
                cert_dir = Some(certs);
                extra = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    d.join("tls.crt").display(),
                    d.join("tls.key").display()
                );
            }
            Variant::Token => {
                require_tool("openssl");
                openssl(
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=token signer",
                        "-keyout",
                        "token.key",
                        "-out",
                        "token.crt",
                    ],
                    d,
                );
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/token_server.py");
                let log = d.join("token.log");
                let child = Command::new("/usr/bin/python3")
                    .arg(script)
                    .arg(d.join("token.port"))
                    .arg(d.join("token.key"))
                    .arg(d.join("token.crt"))
                    .args([USER, PASS])
                    .stdout(std::fs::File::create(&log).unwrap())
                    .stderr(std::fs::File::create(d.join("token.err")).unwrap())
                    .spawn()
                    .expect("python3 token server (needs python3-jwt, python3-cryptography)");
                children.push(child);
                let port = wait_for(
                    || std::fs::read_to_string(d.join("token.port")).ok(),
                    "token server",
                    &d.join("token.err"),
                );
                token_log = Some(log);
                extra = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    service: bootseal-test\n    issuer: bootseal-test-issuer\n    rootcertbundle: {}\n",
                    d.join("token.crt").display()
                );
            }
        }
        let (http_extra, auth_extra) = if variant == Variant::Tls {
            (extra, String::new())
        } else {
            (String::new(), extra)
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-only\n{http_extra}{auth_extra}",
            d.join("data").display()
        );
        std::fs::write(d.join("config.yml"), config).unwrap();
        let log = d.join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(std::fs::File::create(d.join("registry.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        children.push(child);
        let port = wait_for(
            || {
                let text = std::fs::read_to_string(&log).ok()?;
                let at = text.find("listening on 127.0.0.1:")? + "listening on 127.0.0.1:".len();
                Some(
                    text[at..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>(),
                )
            },
            "docker-registry",
            &log,
        );
        let host = format!("127.0.0.1:{port}");
        wait_for(
            || {
                std::net::TcpStream::connect(&host)
                    .ok()
                    .map(|_| String::new())
            },
            "docker-registry port",
            &log,
        );
        Registry {
            variant,
            host,
            dir,
            cert_dir,
            log,
            token_log,
            children,
        }
    }

    /// skopeo flags for talking to this registry as source (`src`) or destination (`dest`).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut f = Vec::new();
        match &self.cert_dir {
            Some(c) => f.push(format!("--{side}-cert-dir={}", c.display())),
            None => f.push(format!("--{side}-tls-verify=false")),
        }
        if matches!(self.variant, Variant::Htpasswd | Variant::Token) {
            f.push(format!("--{side}-creds={USER}:{PASS}"));
        }
        f
    }

    /// bootseal flags for reading from this registry (digest, verify).
    pub fn bootseal_flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        match &self.cert_dir {
            Some(c) => f.push(format!("--cert-dir={}", c.display())),
            None => f.push("--tls-verify=false".into()),
        }
        if matches!(self.variant, Variant::Htpasswd | Variant::Token) {
            f.push(format!("--creds={USER}:{PASS}"));
        }
        f
    }

    pub fn image(&self, repo_tag: &str) -> String {
        format!("docker://{}/{repo_tag}", self.host)
    }

    /// Pushes an OCI layout image here with skopeo.
    pub fn push_layout(&self, oci_ref: &str, repo_tag: &str) {
        run_ok(
            Command::new("skopeo")
                .arg("copy")
                .arg("-q")
                .args(self.skopeo_flags("dest"))
                .arg(oci_ref)
                .arg(self.image(repo_tag)),
        );
    }

    /// Reads an image back into an OCI layout with skopeo.
    pub fn pull_layout(&self, repo_ref: &str, dir: &Path, tag: &str) {
        run_ok(
            Command::new("skopeo")
                .arg("copy")
                .arg("-q")
                .args(self.skopeo_flags("src"))
                .arg(self.image(repo_ref))
                .arg(format!("oci:{}:{tag}", dir.display())),
        );
    }

    /// `skopeo inspect --raw` of an image, or None when it does not exist.
    pub fn raw_manifest(&self, repo_ref: &str) -> Option<Vec<u8>> {
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg("--raw")
            .args(
                self.skopeo_flags("src")
                    .iter()
                    .map(|f| f.replace("--src-", "--")),
            )
            .arg(self.image(repo_ref))
            .output()
            .unwrap();
        out.status.success().then_some(out.stdout)
    }

    /// The Apache-style access log (one line per request with its status) followed by the
    /// registry's own log.
    pub fn access_log(&self) -> String {
        let access =
            std::fs::read_to_string(self.dir.path().join("registry.out")).unwrap_or_default();
        access + &std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn wait_for(mut f: impl FnMut() -> Option<String>, what: &str, log: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Some(v) = f().filter(|v| !v.is_empty() || what.ends_with("port")) {
            return v;
        }
        if start.elapsed() > Duration::from_secs(20) {
            panic!(
                "{what} did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
