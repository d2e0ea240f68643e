//! Real servers on loopback, started by the tests themselves: `git daemon` (with push
//! enabled) and an `sshd` with a generated host key, user key and known_hosts line. Each is
//! killed when dropped. A missing tool skips the test loudly, except under CI, where it is a
//! failure (CI installs them).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_for(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on port {port} within 10 s");
}

/// Says why a test cannot run; under CI that is a failure.
pub fn missing(tool: &str, test: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is missing under CI: .ci/run must install it ({test})");
    }
    eprintln!("SKIPPED {test}: {tool} is not installed (apt-get install {tool})");
}

/// `git daemon` serving `base` on a loopback port, push enabled.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        let mut child = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        wait_for(port, &mut child, "git daemon");
        GitDaemon { child, port }
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An sshd on a loopback port that lets the current user in with a generated key.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub user: String,
    /// The private key the server accepts.
    pub key: PathBuf,
    /// A key the server does not accept.
    pub wrong_key: PathBuf,
    /// The line to put in known_hosts for this server.
    pub known_hosts_line: String,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "opus-mirror-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd, or returns None (after saying so) when it is not installed.
    pub fn start(dir: &Path, test: &str) -> Option<Sshd> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().find(|p| Path::new(p).exists());
        let Some(sshd) = sshd else {
            missing("openssh-server", test);
            return None;
        };
        std::fs::create_dir_all(dir).expect("sshd dir");
        let (host, key, wrong) = (dir.join("host_key"), dir.join("user_key"), dir.join("wrong_key"));
        keygen(&host);
        keygen(&key);
        keygen(&wrong);
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys")).expect("authorized_keys");
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nLogLevel ERROR\n",
                host.display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display()
            ),
        )
        .expect("sshd_config");
        // sshd insists on its privilege separation directory when run as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd");
        wait_for(port, &mut child, "sshd");
        let pubkey = std::fs::read_to_string(host.with_extension("pub")).expect("host pub");
        let mut parts = pubkey.split_whitespace();
        let line =
            format!("[127.0.0.1]:{port} {} {}\n", parts.next().expect("type"), parts.next().expect("key"));
        Some(Sshd { child, port, user, key, wrong_key: wrong, known_hosts_line: line })
    }

    pub fn url(&self, path: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, path.display())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An S3 API server (moto) on a loopback port, and the rclone settings to reach it.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Starts moto's S3 server, or returns None (after saying so) when it is not installed.
    pub fn start(test: &str) -> Option<S3Server> {
        if Command::new("rclone").arg("version").stdout(Stdio::null()).status().is_err() {
            missing("rclone", test);
            return None;
        }
        let has_moto = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_moto {
            missing("moto[server] (python3 -m pip install 'moto[server]')", test);
            return None;
        }
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        wait_for(port, &mut child, "moto_server");
        Some(S3Server { child, port })
    }

    /// Environment that defines the rclone remote `s3:` for this server.
    pub fn rclone_env(&self) -> Vec<(String, String)> {
        [
            ("RCLONE_CONFIG", "/dev/null".to_string()),
            ("RCLONE_CONFIG_S3_TYPE", "s3".to_string()),
            ("RCLONE_CONFIG_S3_PROVIDER", "Other".to_string()),
            ("RCLONE_CONFIG_S3_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("RCLONE_CONFIG_S3_ACCESS_KEY_ID", "test".to_string()),
            ("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "test-secret".to_string()),
            ("RCLONE_CONFIG_S3_REGION", "us-east-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Creates a bucket.
    pub fn mkbucket(&self, name: &str) {
        let st = Command::new("rclone")
            .arg("mkdir")
            .arg(format!("s3:{name}"))
            .envs(self.rclone_env())
            .env_remove("AWS_CA_BUNDLE")
            .status()
            .expect("rclone");
        assert!(st.success(), "rclone mkdir failed");
    }

    /// Stops the server (to test a dead target).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP request received by [`HttpSink`].
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// A tiny HTTP server on loopback that answers 200 to everything and records requests:
/// the webhook and healthcheck endpoint of the alert tests.
pub struct HttpSink {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

impl HttpSink {
    pub fn start() -> HttpSink {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut r = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) =
                    (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                seen.lock().expect("lock").push(Request {
                    method,
                    path,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let mut s = stream;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
            }
        });
        HttpSink { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}
