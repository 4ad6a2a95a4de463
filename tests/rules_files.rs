//! The rules directory as a deployer can leave it: links, named pipes,
//! devices, huge and growing files where package files belong. weir reads
//! only regular files, each within its cap, never through a link and never
//! blocking; what it refuses says why in bounded text that quotes nothing
//! of the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir::engine::Engine;
use weir::live::LiveRules;
use weir::packages::{
    MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, PackageFiles, REFUSAL_TEXT_MAX, Refusal, Trust, Validator,
};

use crate::deploy::{free_addr, wait_status};
use crate::util::{guest, tempdir, text, weir};

/// What a secret file starts with, as `/etc/shadow` or a key file would.
const SECRET: &str = "root:$6$weir-test-secret-line$hash:19000:0:99999:7:::";

/// Makes a named pipe at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
}

/// A running `weir`, killed if the test ends before it exits.
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `weir args…` in `cwd`; its output, or a failure once `limit` passes.
fn weir_within(args: &[&str], cwd: &Path, limit: Duration) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(Some(child));
    let started = Instant::now();
    while running.child().try_wait().unwrap().is_none() {
        assert!(started.elapsed() < limit, "`weir {}` did not finish within {limit:?}", args.join(" "));
        std::thread::sleep(Duration::from_millis(20));
    }
    running.wait()
}

/// `weir run` on piped stdin over `rules`, output in `work/out`, the status
/// endpoint on `addr`, the log in `work/weir.log`.
fn run_on_stdin(rules: &Path, work: &Path, addr: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input", "-", "--batch-size", "20", "--rules"])
        .arg(rules)
        .arg("--output")
        .arg(work.join("out"))
        .env("WEIR_STATUS_LISTEN", addr)
        .env("WEIR_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("weir.log")).unwrap())
        .spawn()
        .unwrap();
    Running(Some(child))
}

fn refused_reason(status: &Value, file: &str) -> Option<String> {
    status["rules"]["refused"]
        .as_array()?
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(file)))
        .and_then(|r| r["reason"].as_str().map(str::to_owned))
}

fn is_active(status: &Value, id: &str) -> bool {
    status["rules"]["active"].as_array().is_some_and(|a| a.iter().any(|v| v["rule_id"] == id))
}

/// A rules directory holding the velocity package alone.
fn velocity_only(rules: &Path) {
    std::fs::create_dir_all(rules).unwrap();
    std::fs::write(rules.join("velocity.wasm"), guest("velocity")).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/velocity/rule.toml");
    std::fs::copy(manifest, rules.join("velocity.toml")).unwrap();
}

/// A second rule from large-amount's component, under id `id`.
fn big_spender(rules: &Path, id: &str) {
    if !rules.join("large-amount.wasm").exists() {
        std::fs::write(rules.join("large-amount.wasm"), guest("large-amount")).unwrap();
    }
    let manifest = format!(
        "[rule]\nid = \"{id}\"\nversion = \"1\"\ncomponent = \"large-amount.wasm\"\n\n[params.suspect_over]\nEUR = 5000\n"
    );
    std::fs::write(rules.join(format!("{id}.toml")), manifest).unwrap();
}

fn refusal(manifest: &Path) -> Refusal {
    PackageFiles::read(manifest).expect_err("refused")
}

/// A manifest that is a link to a secret (`/etc/shadow`, a signing key) is
/// refused as a link and never opened: its first line, which the TOML error
/// used to quote, is not in `weir rules`' output, the log or `/status`.
#[test]
fn a_manifest_linked_to_a_secret_is_refused_and_never_quoted() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_only(&rules);
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, format!("{SECRET}\ndaemon:*:19000:0:99999:7:::\n")).unwrap();
    std::os::unix::fs::symlink(&secret, rules.join("stolen.toml")).unwrap();

    let o = weir_within(&["rules", "rules"], dir.path(), Duration::from_secs(120));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("stolen.toml") && out.contains("symbolic link"), "{out}");
    assert!(out.contains("1 loaded, 1 refused"), "{out}");
    assert!(!out.contains("weir-test-secret"), "the secret leaked into `weir rules`:\n{out}");

    let addr = free_addr();
    let mut running = run_on_stdin(&rules, dir.path(), &addr);
    let status = wait_status(&addr, "the link refused", |s| refused_reason(s, "stolen.toml").is_some());
    let reason = refused_reason(&status, "stolen.toml").unwrap();
    assert!(reason.contains("symbolic link"), "{reason}");
    // A link made while weir runs is refused the same way.
    std::os::unix::fs::symlink(&secret, rules.join("later.toml")).unwrap();
    let status = wait_status(&addr, "the later link refused", |s| refused_reason(s, "later.toml").is_some());
    drop(running.child().stdin.take());
    let o = running.wait();
    assert!(o.status.success());
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(log.contains("stolen.toml") && log.contains("symbolic link"), "{log}");
    for (what, text) in [("the log", log), ("/status", status.to_string())] {
        assert!(!text.contains("weir-test-secret"), "the secret leaked into {what}:\n{text}");
    }
}

/// A manifest that is a regular file but not TOML is refused with where
/// the error is, not with the line itself (toml's own message prints it).
#[test]
fn a_manifest_that_is_not_toml_is_refused_without_quoting_it() {
    let dir = tempdir();
    std::fs::write(dir.path().join("keys.toml"), format!("[rule]\nid = \"keys\"\nversion = \"1\"\n{SECRET}\n"))
        .unwrap();
    let reason = refusal(&dir.path().join("keys.toml")).to_string();
    // toml finds the error at the end of the line.
    let place = format!("invalid manifest: line 4, column {}: ", SECRET.len() + 1);
    assert!(reason.contains(&place), "{reason}");
    assert!(!reason.contains("weir-test-secret") && !reason.contains("root:"), "{reason}");
    // A string value in serde's message is left out as well; the key is named.
    std::fs::write(
        dir.path().join("typed.toml"),
        "[rule]\nid = \"typed\"\nversion = \"1\"\n[limits]\nfuel = \"weir-test-secret\"\n",
    )
    .unwrap();
    let reason = refusal(&dir.path().join("typed.toml")).to_string();
    assert!(reason.contains("line 5") && reason.contains("fuel"), "{reason}");
    assert!(!reason.contains("weir-test-secret"), "{reason}");
    // The self-test cases file too.
    std::fs::write(dir.path().join("velocity.wasm"), guest("velocity")).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/velocity/rule.toml");
    std::fs::copy(manifest, dir.path().join("velocity.toml")).unwrap();
    std::fs::write(dir.path().join("velocity.cases.toml"), format!("[[case]]\n{SECRET}\n")).unwrap();
    let package = PackageFiles::read(&dir.path().join("velocity.toml")).unwrap();
    let validator = Validator::new(Engine::new().unwrap(), Trust::default());
    let Err(refused) = validator.validate(&package) else { panic!("the cases file is not valid") };
    let reason = refused.to_string();
    assert!(reason.contains("velocity.cases.toml: line 2"), "{reason}");
    assert!(!reason.contains("weir-test-secret"), "{reason}");
}

/// A signature that is a named pipe: `weir rules` and the start of
/// `weir run` used to wait forever in `open`; now the package is refused
/// and the rest runs.
#[test]
fn a_signature_that_is_a_named_pipe_does_not_hang_rules_or_run() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_only(&rules);
    big_spender(&rules, "big-spender");
    mkfifo(&rules.join("velocity.sig"));

    let o = weir_within(&["rules", "rules"], dir.path(), Duration::from_secs(120));
    let out = text(&o);
    assert!(out.contains("velocity.sig") && out.contains("named pipe"), "{out}");
    assert!(out.contains("1 loaded, 1 refused"), "{out}");

    let input = crate::util::jsonl(&[crate::util::tx("tx-1", 0), crate::util::tx("tx-2", 10)]);
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let args = ["run", "--rules", "rules", "--input", "in.jsonl", "--output", "out"];
    let o = weir_within(&args, dir.path(), Duration::from_secs(120));
    assert!(o.status.success(), "{}", text(&o));
    let decisions = std::fs::read_to_string(dir.path().join("out/decisions.jsonl")).unwrap();
    assert_eq!(decisions.lines().count(), 2, "{decisions}");
}

/// A named pipe made while weir runs used to freeze the watcher in `open`,
/// silently: no later deploy took effect. Now it is refused, and a later
/// package goes live.
#[test]
fn a_named_pipe_made_while_running_does_not_stop_later_rescans() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_only(&rules);
    let addr = free_addr();
    let mut running = run_on_stdin(&rules, dir.path(), &addr);
    wait_status(&addr, "weir up", |s| is_active(s, "velocity"));

    mkfifo(&rules.join("velocity.sig"));
    let status = wait_status(&addr, "the pipe refused", |s| refused_reason(s, "velocity.toml").is_some());
    let reason = refused_reason(&status, "velocity.toml").unwrap();
    assert!(reason.contains("velocity.sig") && reason.contains("named pipe"), "{reason}");
    assert!(is_active(&status, "velocity"), "the running version stays: {status:#}");
    mkfifo(&rules.join("pipe.toml"));

    big_spender(&rules, "big-spender");
    let status = wait_status(&addr, "a later deploy in effect", |s| is_active(s, "big-spender"));
    assert!(refused_reason(&status, "pipe.toml").is_some_and(|r| r.contains("named pipe")), "{status:#}");

    let mut stdin = running.child().stdin.take().unwrap();
    writeln!(stdin, "{}", crate::util::jsonl(&[crate::util::tx("tx-1", 0)]).trim_end()).unwrap();
    drop(stdin);
    let o = running.wait();
    assert!(o.status.success(), "{}", std::fs::read_to_string(dir.path().join("weir.log")).unwrap());
    let decisions = std::fs::read_to_string(dir.path().join("out/decisions.jsonl")).unwrap();
    assert_eq!(decisions.lines().count(), 1, "{decisions}");
}

/// A component that is a link to `/proc/self/fd/0` made the loader read
/// weir's own stdin — the transactions of `--input -` — as a component.
/// Now it is refused, and every transaction is decided or dead-lettered.
#[test]
fn a_component_linked_to_stdin_does_not_swallow_the_input() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_only(&rules);
    std::fs::write(rules.join("reader.toml"), "[rule]\nid = \"reader\"\nversion = \"1\"\ncomponent = \"fd0.wasm\"\n")
        .unwrap();
    std::os::unix::fs::symlink("/proc/self/fd/0", rules.join("fd0.wasm")).unwrap();

    let lines: Vec<String> = weir::demo::generate(201, 20, 7).lines.into_iter().take(201).collect();
    let addr = free_addr();
    let mut running = run_on_stdin(&rules, dir.path(), &addr);
    let mut stdin = running.child().stdin.take().unwrap();
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let o = running.wait();
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(o.status.success(), "{log}");
    assert!(log.contains("fd0.wasm") && log.contains("symbolic link"), "{log}");
    let count =
        |file: &str| std::fs::read_to_string(dir.path().join("out").join(file)).unwrap_or_default().lines().count();
    assert_eq!(
        count("decisions.jsonl") + count("dead-letters.jsonl"),
        lines.len(),
        "every transaction is decided or dead-lettered"
    );
}

/// A component over its cap — a byte over, and a sparse 16 GiB file, which
/// costs no disk — is refused from its size, before a byte is read; a link
/// to `/dev/zero` is not read either.
#[test]
fn a_component_over_its_cap_is_refused_before_reading() {
    let dir = tempdir();
    std::fs::write(dir.path().join("huge.toml"), "[rule]\nid = \"huge\"\nversion = \"1\"\n").unwrap();
    for size in [MAX_COMPONENT_BYTES + 1, 16 << 30] {
        std::fs::File::create(dir.path().join("huge.wasm")).unwrap().set_len(size).unwrap();
        let started = Instant::now();
        let reason = refusal(&dir.path().join("huge.toml")).to_string();
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(reason.contains("huge.wasm") && reason.contains(&format!("is {size} bytes")), "{reason}");
        assert!(reason.contains(&format!("a component may be at most {MAX_COMPONENT_BYTES} bytes")), "{reason}");
    }
    // Endless: `/dev/zero`, behind a link, is not opened at all.
    std::fs::remove_file(dir.path().join("huge.wasm")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("huge.wasm")).unwrap();
    let reason = refusal(&dir.path().join("huge.toml")).to_string();
    assert!(reason.contains("huge.wasm: is a symbolic link"), "{reason}");
}

/// A manifest over its cap is refused, however valid.
#[test]
fn a_manifest_over_its_cap_is_refused() {
    let dir = tempdir();
    std::fs::write(dir.path().join("velocity.wasm"), guest("velocity")).unwrap();
    // Padded with a comment: a description has a cap of its own.
    let head = "[rule]\nid = \"velocity\"\nversion = \"1\"\n# ";
    let padding = "x".repeat(MAX_MANIFEST_BYTES as usize + 1 - head.len() - 1);
    let manifest = format!("{head}{padding}\n");
    assert_eq!(manifest.len() as u64, MAX_MANIFEST_BYTES + 1);
    std::fs::write(dir.path().join("velocity.toml"), &manifest).unwrap();
    let reason = refusal(&dir.path().join("velocity.toml")).to_string();
    assert!(reason.contains("a manifest may be at most"), "{reason}");
    // One byte less is read.
    std::fs::write(dir.path().join("velocity.toml"), manifest.replacen('x', "", 1)).unwrap();
    PackageFiles::read(&dir.path().join("velocity.toml")).unwrap();
}

/// A refusal's reason is at most `REFUSAL_TEXT_MAX` bytes, whatever the
/// files: a long id, a huge line that is not TOML, thousands of failing
/// self-test cases. Five such packages make a small `/status`.
#[test]
fn refusal_reasons_are_capped() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_only(&rules);
    let long = "a".repeat(200_000);
    std::fs::write(rules.join("long-id.toml"), format!("[rule]\nid = \"{long}\"\nversion = \"1\"\n")).unwrap();
    std::fs::write(rules.join("long-line.toml"), format!("[rule]\nid = \"x\"\nversion = \"1\"\n{long} {long}\n"))
        .unwrap();
    std::fs::write(rules.join("long-key.toml"), format!("[rule]\nid = \"x\"\nversion = \"1\"\n{long} = 1\n")).unwrap();
    std::fs::write(
        rules.join("long-component.toml"),
        format!("[rule]\nid = \"x\"\nversion = \"1\"\ncomponent = \"{long}\"\n"),
    )
    .unwrap();
    let many: String = (0..3000)
        .map(|i| {
            format!(
                "[[case]]\nname = \"case {i} with a long name {}\"\n[case.expect]\noutcome = \"lock\"\n",
                "n".repeat(200)
            )
        })
        .collect();
    std::fs::write(rules.join("velocity.cases.toml"), many).unwrap();

    let live = LiveRules::load(&rules, Validator::new(Engine::new().unwrap(), Trust::default())).unwrap();
    let status = live.status();
    assert_eq!(status.refused.len(), 5, "{:#?}", status.refused);
    for r in &status.refused {
        assert!(r.reason.len() <= REFUSAL_TEXT_MAX, "{} bytes: {}", r.reason.len(), r.reason);
        assert!(!r.reason.chars().any(char::is_control), "{:?}", r.reason);
    }
    let velocity = status.refused.iter().find(|r| r.path.ends_with("velocity.toml")).unwrap();
    assert!(velocity.reason.starts_with("3000 of 3000 self-test cases"), "{}", velocity.reason);
    let json = serde_json::to_string(&status).unwrap();
    assert!(json.len() < 5 * REFUSAL_TEXT_MAX * 2 + 4096, "the status is {} bytes", json.len());
}

/// Whatever is named like a manifest is reported, not skipped: a
/// directory, a dangling link; a link in place of the cases file is not
/// taken for a missing one.
#[test]
fn anything_named_like_a_package_file_is_refused_with_what_it_is() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_only(&rules);
    std::fs::create_dir(rules.join("folder.toml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), rules.join("dangling.toml")).unwrap();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/velocity/cases.toml");
    std::os::unix::fs::symlink(cases, rules.join("velocity.cases.toml")).unwrap();
    let found: Vec<PathBuf> = weir::packages::manifests(&rules).unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    let o = weir(&["rules", "rules"], dir.path());
    let out = text(&o);
    assert!(out.contains("folder.toml: is a directory, not a regular file"), "{out}");
    assert!(out.contains("dangling.toml: is a symbolic link"), "{out}");
    assert!(out.contains("velocity.cases.toml: is a symbolic link"), "{out}");
    assert!(out.contains("0 loaded, 3 refused"), "{out}");
}
