//! A stalled server — it accepts the connection and never says a word — must not hold a run
//! (and its lock) forever: every network path gives up after `[network] timeout` with exit 5
//! (unreachable), and the next command gets the lock at once.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{vaultgen, Env, Run};

/// The timeout the tests configure.
const NETWORK: &str = "[network]\ntimeout = \"2s\"\n";

/// How long a test waits before it calls the run hung (the timeout, times the few network
/// attempts a step makes, plus start-up).
const HUNG_AFTER: Duration = Duration::from_secs(40);

/// A loopback server that accepts every connection and never answers; it keeps reading so
/// the client's writes never fail either.
struct Stalled {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Stalled {
    fn start() -> Stalled {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let mut r = s.try_clone().expect("clone stream");
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while r.read(&mut buf).is_ok_and(|n| n > 0) {}
                });
                keep.lock().expect("lock").push(s);
            }
        });
        Stalled { port, _held: held }
    }
}

/// Runs the binary with a test-side deadline: a run still going after [`HUNG_AFTER`] is
/// killed and the test fails. Returns the outcome and how long it took.
fn run_bounded(env: &Env, args: &[&str]) -> (Run, Duration) {
    let start = Instant::now();
    let mut c: Command = env.command(args);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn opus-mirror");
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > HUNG_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`opus-mirror {}` hung on a stalled server for {HUNG_AFTER:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    let run = Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    (run, start.elapsed())
}

/// A vault source whose mirror is `url`, with `extra` config appended.
fn vault_with_mirror(env: &Env, url: &str, extra: &str) {
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 5, attachments: 0, ..Default::default() });
    env.write_config_text(&format!(
        "state_dir = {:?}\n{NETWORK}{extra}\n[[source]]\nname = \"vault\"\npath = {:?}\nmirror = {url:?}\n",
        env.state.display().to_string(),
        vault.display().to_string()
    ));
    env.run(&["snapshot"]).ok();
}

/// Exit 5, a message that says the server did not answer, and the lock free afterwards.
fn assert_gave_up(env: &Env, run: &Run, took: Duration, limit: Duration) {
    assert_eq!(run.code, 5, "exit code\n--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr);
    // `run` reports its steps on stdout, the single commands on stderr.
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("[network] timeout = \"2s\""), "the message names the setting:\n{said}");
    assert!(took < limit, "gave up after {took:?}, more than {limit:?}");
    eprintln!("gave up after {took:.1?} (exit 5)");
    let again = env.run(&["snapshot"]);
    assert_eq!(again.code, 0, "the lock was not released:\n{}", again.stderr);
}

#[test]
fn a_stalled_git_daemon_times_out_over_libgit2() {
    let server = Stalled::start();
    let env = Env::new();
    vault_with_mirror(&env, &format!("git://127.0.0.1:{}/x.git", server.port), "");
    let (r, took) = run_bounded(&env, &["run"]);
    assert_gave_up(&env, &r, took, Duration::from_secs(10));
}

#[test]
fn a_stalled_ssh_server_times_out_over_libgit2() {
    let server = Stalled::start();
    let env = Env::new();
    vault_with_mirror(&env, &format!("ssh://git@127.0.0.1:{}/x.git", server.port), "");
    let (r, took) = run_bounded(&env, &["mirror"]);
    assert_gave_up(&env, &r, took, Duration::from_secs(10));
}

#[test]
fn a_stalled_server_times_out_over_the_git_cli() {
    let server = Stalled::start();
    let env = Env::new();
    vault_with_mirror(&env, &format!("git://127.0.0.1:{}/x.git", server.port), "transport = \"git-cli\"\n");
    let (r, took) = run_bounded(&env, &["mirror"]);
    assert_gave_up(&env, &r, took, Duration::from_secs(10));
}

#[test]
fn a_stalled_ssh_server_times_out_over_the_git_cli() {
    let server = Stalled::start();
    let env = Env::new();
    vault_with_mirror(
        &env,
        &format!("ssh://git@127.0.0.1:{}/x.git", server.port),
        "transport = \"git-cli\"\n",
    );
    let (r, took) = run_bounded(&env, &["mirror"]);
    assert_gave_up(&env, &r, took, Duration::from_secs(10));
}

/// A vault source and an rclone target whose S3 endpoint is `server`; None without rclone.
fn vault_with_stalled_s3(server: &Stalled, test: &str) -> Option<Env> {
    if Command::new("rclone").arg("version").output().is_err() {
        crate::helpers::servers::missing("rclone", test);
        return None;
    }
    let mut env = Env::new();
    env.vars = [
        ("RCLONE_CONFIG", "/dev/null".to_string()),
        ("RCLONE_CONFIG_S3_TYPE", "s3".to_string()),
        ("RCLONE_CONFIG_S3_PROVIDER", "Other".to_string()),
        ("RCLONE_CONFIG_S3_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
        ("RCLONE_CONFIG_S3_ACCESS_KEY_ID", "test".to_string()),
        ("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "test-secret".to_string()),
        ("RCLONE_CONFIG_S3_REGION", "us-east-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 5, attachments: 0, ..Default::default() });
    env.write_config_text(&format!(
        "state_dir = {:?}\n{NETWORK}\n[[source]]\nname = \"vault\"\npath = {:?}\n\n[[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \"s3:backups/opus\"\n",
        env.state.display().to_string(),
        vault.display().to_string()
    ));
    env.run(&["snapshot"]).ok();
    Some(env)
}

#[test]
fn a_stalled_s3_endpoint_times_out_over_rclone() {
    let server = Stalled::start();
    let Some(env) = vault_with_stalled_s3(&server, "a_stalled_s3_endpoint_times_out_over_rclone") else {
        return;
    };
    let (r, took) = run_bounded(&env, &["bundle"]);
    assert_gave_up(&env, &r, took, Duration::from_secs(15));
    assert!(!r.stderr.contains("test-secret"), "a credential leaked: {}", r.stderr);
}

/// `run` waits on the stalled target once: check and drill do not try it again.
#[test]
fn a_run_with_a_stalled_s3_target_waits_once_and_exits_5() {
    let server = Stalled::start();
    let Some(env) = vault_with_stalled_s3(&server, "a_run_with_a_stalled_s3_target_waits_once_and_exits_5")
    else {
        return;
    };
    let (r, took) = run_bounded(&env, &["run"]);
    assert_gave_up(&env, &r, took, Duration::from_secs(15));
    assert!(r.stdout.contains("not checked, unreachable in this run's bundle step"), "{}", r.stdout);
}

#[test]
fn a_zero_network_timeout_is_a_config_error() {
    let env = Env::new();
    env.write_config_text(&format!(
        "state_dir = {:?}\n[network]\ntimeout = \"0s\"\n",
        env.state.display().to_string()
    ));
    let r = env.run(&["config", "check"]).code(2);
    assert!(r.stderr.contains("network.timeout") && r.stderr.contains("at least 1s"), "{}", r.stderr);
}
