//! Hot deploy under a continuous stream: a new version of a rule goes live
//! between two batches, bad packages are refused while the running version
//! stays, a removed rule is retired, a shadow rule never decides — and
//! every transaction gets exactly one decision throughout.
//!
//! The scenario ([`deploy_steps`]) is the same for the embedded pipeline
//! (here) and for Kafka (`kafka::hot_deploy_on_kafka_*`): it works on the
//! rules directory a running `weir run` watches, and follows the host
//! through its status endpoint.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;
use weir::events::{DecisionEvent, DecisionType, RuleMode, RuleOutcome};

use crate::util::{guest, tempdir, text, weir};

/// The rule that gets a new version, the one retired, and the shadow rule.
pub const UPDATED: &str = "velocity";
pub const RETIRED: &str = "card-testing";
pub const SHADOW: &str = "big-spender-trial";

/// A free local port for a status endpoint.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// `GET path` on the status endpoint, as JSON; `None` while it is not up.
pub fn get(addr: &str, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

pub fn wait_status(addr: &str, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        if let Some(status) = get(addr, "/status")
            && done(&status)
        {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {:#?}",
            get(addr, "/status")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn active_label(status: &Value, id: &str) -> Option<String> {
    status["rules"]["active"].as_array()?.iter().find(|v| v["rule_id"] == id).map(|v| v["version_label"].to_string())
}

fn refused_reason(status: &Value, file: &str, hash: &str) -> Option<String> {
    status["rules"]["refused"]
        .as_array()?
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(file)) && r["hash"] == hash)
        .map(|r| r["reason"].as_str().unwrap_or_default().to_owned())
}

/// The rules directory at start: the shipped rules, plus a shadow copy of
/// large-amount with a low threshold, so it suspects often.
pub fn initial_rules(dir: &Path) {
    weir::packages::export_shipped(dir).unwrap();
    std::fs::remove_file(dir.join("merchant-block.toml")).unwrap();
    let manifest = format!(
        "[rule]\nid = \"{SHADOW}\"\nversion = \"0.1.0\"\nmode = \"shadow\"\ncomponent = \"large-amount.wasm\"\n\n[params.suspect_over]\nEUR = 5000\nUSD = 5000\nGBP = 5000\n"
    );
    std::fs::write(dir.join(format!("{SHADOW}.toml")), manifest).unwrap();
}

pub fn velocity_manifest(version: &str, max_count: u32) -> String {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/velocity/rule.toml")).unwrap();
    shipped
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""))
        .replace("max_count = 10", &format!("max_count = {max_count}"))
}

/// What the scenario did, for the assertions on the decisions.
pub struct Deployed {
    pub v1: String,
    pub v2: String,
    /// Generation that made v2 active, and the one that retired [`RETIRED`].
    pub v2_generation: u64,
    pub retired_generation: u64,
    /// Hashes of the refused packages.
    pub refused: Vec<String>,
    pub status: Value,
}

/// Runs the deploy steps against a running weir watching `rules` with its
/// status endpoint on `addr`. `work` is scratch space.
/// `partitions`: how many input partitions the pipeline reads; a swap has
/// taken effect once every one of them has its cutover (each decide worker
/// reports its own).
pub fn deploy_steps(rules: &Path, addr: &str, work: &Path, partitions: usize) -> Deployed {
    let everywhere = |s: &Value| {
        let last = s["rules"]["swaps"].as_array().unwrap().last().unwrap();
        last["took_effect"] != "" && last["cutover"].as_array().is_some_and(|c| c.len() == partitions)
    };
    let status = wait_status(addr, "traffic decided by the first rules", |s| {
        s["pipeline"]["records"].as_u64().unwrap_or(0) >= 1000
    });
    let v1 = status["rules"]["active"].as_array().unwrap().iter().find(|v| v["rule_id"] == UPDATED).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1. v2 of velocity, through `weir rule deploy`.
    let package = work.join("velocity-v2");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("velocity.toml"), velocity_manifest("2.0.0", 4)).unwrap();
    std::fs::write(package.join("velocity.wasm"), guest("velocity")).unwrap();
    std::fs::copy(rules.join("velocity.cases.toml"), package.join("velocity.cases.toml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["rule", "deploy"])
        .arg(&package)
        .arg("--rules")
        .arg(rules)
        .output()
        .unwrap();
    assert!(out.status.success(), "deploy: {}", String::from_utf8_lossy(&out.stderr));
    let v2 = weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash;
    let status = wait_status(addr, "v2 in effect", |s| {
        active_label(s, UPDATED).as_deref() == Some("\"2.0.0\"") && everywhere(s)
    });
    let v2_generation = status["rules"]["generation"].as_u64().unwrap();

    // 2. Bad packages, each a plain copy over velocity's files.
    let future = guest("future-contract");
    let real = guest("velocity");
    let mut refused = Vec::new();
    let bad: [(&str, Vec<u8>, Option<&str>, &str); 4] = [
        ("3.0.0-broken", [b"\0asm\x0d\0\x01\0".as_slice(), &[0xff; 600]].concat(), None, "does not compile"),
        ("4.0.0-future", future, None, "weir:rule@2.4.0"),
        ("5.0.0-truncated", real[..real.len() / 2].to_vec(), None, "does not compile"),
        (
            "6.0.0-failing-self-test",
            real.clone(),
            Some("[[case]]\nname = \"one purchase is suspected\"\n[case.expect]\noutcome = \"suspect\"\n"),
            "self-test cases",
        ),
    ];
    for (version, component, cases, reason) in bad {
        if let Some(cases) = cases {
            std::fs::write(rules.join("velocity.cases.toml"), cases).unwrap();
        }
        std::fs::write(rules.join("velocity.wasm"), &component).unwrap();
        let manifest = velocity_manifest(version, 4);
        std::fs::write(rules.join("velocity.toml"), &manifest).unwrap();
        let hash = weir::engine::content_hash(&component, &manifest);
        let status =
            wait_status(addr, &format!("{version} refused"), |s| refused_reason(s, "velocity.toml", &hash).is_some());
        let why = refused_reason(&status, "velocity.toml", &hash).unwrap();
        assert!(why.contains(reason), "{version} refused for {why:?}, expected {reason:?}");
        assert_eq!(active_label(&status, UPDATED).as_deref(), Some("\"2.0.0\""), "v2 keeps running after {version}");
        refused.push(hash);
    }

    // 3. Retire a rule.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["rule", "retire", RETIRED, "--rules"])
        .arg(rules)
        .output()
        .unwrap();
    assert!(out.status.success(), "retire: {}", String::from_utf8_lossy(&out.stderr));
    let status = wait_status(addr, "the retirement in effect", |s| active_label(s, RETIRED).is_none() && everywhere(s));
    let retired_generation = status["rules"]["generation"].as_u64().unwrap();
    assert_eq!(retired_generation, v2_generation + 1, "refused packages published no rule set");
    Deployed { v1, v2, v2_generation, retired_generation, refused, status }
}

/// Where generation `g` took effect: (input partition → first offset), from
/// the status's `cutover` (embedded: partition 0, offsets are line numbers).
pub fn cutover(status: &Value, g: u64) -> BTreeMap<i32, i64> {
    let swap = status["rules"]["swaps"].as_array().unwrap().iter().find(|s| s["generation"] == g).unwrap();
    swap["cutover"]
        .as_array()
        .unwrap()
        .iter()
        // `null`: the partition's start, 0 for the test's fresh topics.
        .map(|c| (c["partition"].as_i64().unwrap() as i32, c["offset"].as_i64().unwrap_or(0)))
        .collect()
}

/// Asserts the decisions of the scenario: one per transaction, versions
/// switched exactly at the cutovers, no refused version ever ran, the
/// retired rule stopped, the shadow rule never decided.
pub fn assert_decisions(decisions: &[DecisionEvent], expected: &HashSet<String>, deployed: &Deployed) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for d in decisions {
        *counts.entry(&d.transaction_id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "decided more than once: {twice:?}");
    let decided: HashSet<String> = counts.keys().map(|k| k.to_string()).collect();
    assert_eq!(&decided, expected, "every transaction decided, none invented");

    let v2_from = cutover(&deployed.status, deployed.v2_generation);
    let retired_from = cutover(&deployed.status, deployed.retired_generation);
    let after = |from: &BTreeMap<i32, i64>, d: &DecisionEvent| d.input.offset >= from[&d.input.partition];
    let (mut v1_seen, mut v2_seen, mut shadow_only_hits) = (0, 0, 0);
    for d in decisions {
        let version = |id: &str| d.rules.iter().find(|r| r.rule_id == id).map(|r| r.rule_version.as_str());
        let velocity = version(UPDATED).unwrap_or_else(|| panic!("{} has no {UPDATED} result", d.transaction_id));
        if after(&v2_from, d) {
            assert_eq!(velocity, deployed.v2, "{} at {:?} is after the cutover", d.transaction_id, d.input);
            v2_seen += 1;
        } else {
            assert_eq!(velocity, deployed.v1, "{} at {:?} is before the cutover", d.transaction_id, d.input);
            v1_seen += 1;
        }
        assert_eq!(
            version(RETIRED).is_none(),
            after(&retired_from, d),
            "{} at {:?}: {RETIRED} runs exactly until it is retired",
            d.transaction_id,
            d.input
        );
        for r in &d.rules {
            assert!(
                !deployed.refused.iter().any(|h| r.rule_version == *h),
                "a refused package ran: {}",
                r.rule_version
            );
        }
        let shadow = d.rules.iter().find(|r| r.rule_id == SHADOW).expect("the shadow rule's verdict is recorded");
        assert_eq!(shadow.mode, RuleMode::Shadow);
        let enforced_pass =
            d.rules.iter().filter(|r| r.mode == RuleMode::Enforce).all(|r| r.outcome == RuleOutcome::Pass);
        if enforced_pass && shadow.outcome != RuleOutcome::Pass {
            assert_eq!(d.event_type, DecisionType::TransactionVerified, "the shadow rule decided {}", d.transaction_id);
            assert!(d.reason.is_none(), "the shadow rule gave the reason of {}", d.transaction_id);
            shadow_only_hits += 1;
        }
    }
    eprintln!(
        "{} decisions: {v1_seen} by v1, {v2_seen} by v2; shadow-only hits {shadow_only_hits}; cutovers {v2_from:?} / {retired_from:?}",
        decisions.len()
    );
    assert!(v1_seen > 500 && v2_seen > 500, "both versions decided traffic: v1 {v1_seen}, v2 {v2_seen}");
    assert!(shadow_only_hits > 100, "the shadow rule hit where no enforced rule did: {shadow_only_hits}");
}

/// The transaction ids in `lines` that weir decides (the well-formed ones).
pub fn decidable(lines: &[String]) -> HashSet<String> {
    lines
        .iter()
        .filter_map(|l| weir::events::parse_transaction(l.as_bytes(), weir::events::MAX_EVENT_BYTES).ok())
        .map(|t| t.transaction_id)
        .collect()
}

/// Feeds `lines` at about `per_sec`, pausing at `pause_at` until `go` is set.
pub fn feed(
    lines: Vec<String>,
    per_sec: usize,
    pause_at: usize,
    go: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut send: impl FnMut(&[String]),
) {
    let chunk = (per_sec / 20).max(1);
    for (i, part) in lines.chunks(chunk).enumerate() {
        if i * chunk >= pause_at {
            while !go.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        send(part);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hot_deploy_embedded_under_a_continuous_stream() {
    let dir = tempdir();
    let rules: PathBuf = dir.path().join("rules");
    initial_rules(&rules);
    let addr = free_addr();
    let mut child = run_on_stdin(&rules, dir.path(), &addr, 100);
    let lines = weir::demo::generate(30_000, 400, 21).lines;
    let expected = decidable(&lines);
    let go = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut stdin = child.stdin.take().unwrap();
    let feeder = {
        let go = go.clone();
        std::thread::spawn(move || {
            feed(lines, 4000, 20_000, go, |part| {
                for l in part {
                    writeln!(stdin, "{l}").unwrap();
                }
                stdin.flush().unwrap();
            })
        })
    };
    let deployed = deploy_steps(&rules, &addr, dir.path(), 1);
    go.store(true, std::sync::atomic::Ordering::Release);
    feeder.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(out.status.success(), "weir run failed: {}\n{log}", String::from_utf8_lossy(&out.stdout));
    let refusals = log.lines().filter(|l| l.contains("rule package refused") && l.contains("velocity.toml")).count();
    assert!(refusals >= deployed.refused.len(), "each refusal is logged with the package and reason:\n{log}");
    assert!(log.contains("rules swapped"), "swaps are logged with where they took effect");
    let decisions: Vec<DecisionEvent> = weir_testkit::jsonl(&dir.path().join("out/decisions.jsonl"));
    assert_decisions(&decisions, &expected, &deployed);
    assert!(deployed.status["rules"]["refusals_total"].as_u64() >= Some(4), "{:#}", deployed.status);
}

/// A package directory holding velocity with `max_count`, its cases and component.
pub fn velocity_package(dir: &Path, version: &str, max_count: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("velocity.toml"), velocity_manifest(version, max_count)).unwrap();
    std::fs::write(dir.join("velocity.wasm"), guest("velocity")).unwrap();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/velocity/cases.toml");
    std::fs::copy(cases, dir.join("velocity.cases.toml")).unwrap();
    dir.to_owned()
}

#[test]
fn deploy_promote_rollback_and_retire_from_the_command_line() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let v1 = velocity_package(&dir.path().join("v1"), "1.0.0", 10);
    let v2 = velocity_package(&dir.path().join("v2"), "2.0.0", 6);

    std::fs::write(dir.path().join("cache.toml"), "[rules]\ncache_dir = \"cache\"\n").unwrap();
    let deploy_v1 =
        ["rule", "deploy", v1.to_str().unwrap(), "--rules", "rules", "--mode", "shadow", "-c", "cache.toml"];
    let o = weir(&deploy_v1, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let deployed = weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap();
    assert_eq!(deployed.spec.mode, RuleMode::Shadow, "--mode shadow rewrote the manifest");
    assert!(deployed.manifest.contains("# Suspect when more transactions"), "the manifest keeps its comments");
    assert!(rules.join("velocity.cases.toml").is_file(), "the self-test cases travel with the package");
    assert!(!rules.join(".weir-cache").exists(), "nothing compiled is written where packages are dropped");
    let compiled = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|e| e == "cwasm"))
        .count();
    assert_eq!(compiled, 1, "deploy compiled the component into weir's compile cache");
    // A cache inside the rules directory is refused, naming the setting.
    std::fs::write(dir.path().join("inside.toml"), "[rules]\ncache_dir = \"rules/.weir-cache\"\n").unwrap();
    let o = weir(&["rule", "deploy", v1.to_str().unwrap(), "--rules", "rules", "-c", "inside.toml"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("`rules.cache_dir`") && text(&o).contains("inside the rules directory"), "{}", text(&o));

    // Promote: the same package, enforced.
    let o = weir(&["rule", "deploy", "rules/velocity.toml", "--rules", "rules", "--mode", "enforce"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let promoted = weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap();
    assert_eq!(promoted.spec.mode, RuleMode::Enforce);
    assert_ne!(promoted.hash, deployed.hash, "a mode change is a new version");

    let o = weir(&["rule", "deploy", v2.to_str().unwrap(), "--rules", "rules"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("replacing 1.0.0"), "{}", text(&o));
    let o = weir(&["rule", "deploy", v2.to_str().unwrap(), "--rules", "rules"], dir.path());
    assert!(text(&o).contains("already deployed"), "{}", text(&o));

    // Rollback brings back the promoted v1, exactly.
    let o = weir(&["rule", "rollback", "velocity", "--rules", "rules"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash, promoted.hash);

    // A package whose self-tests fail is refused and changes nothing.
    let bad = velocity_package(&dir.path().join("bad"), "3.0.0", 10);
    std::fs::write(
        bad.join("velocity.cases.toml"),
        "[[case]]\nname = \"one purchase is suspected\"\n[case.expect]\noutcome = \"suspect\"\n",
    )
    .unwrap();
    let o = weir(&["rule", "deploy", bad.to_str().unwrap(), "--rules", "rules"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("self-test cases") && text(&o).contains("one purchase is suspected"), "{}", text(&o));
    assert_eq!(weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash, promoted.hash);

    let o = weir(&["rule", "retire", "velocity", "--rules", "rules"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(!rules.join("velocity.toml").exists() && !rules.join("velocity.cases.toml").exists());
    let o = weir(&["rule", "rollback", "velocity", "--rules", "rules"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash, promoted.hash);
}

#[test]
fn signed_packages_are_required_when_configured() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_package(&rules, "1.0.0", 10);
    let o = weir(&["rule", "keygen", "--out", "team.key"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let public = text(&o).lines().last().unwrap().trim().to_owned();
    assert_eq!(public.len(), 64, "{}", text(&o));
    let config = format!("[rules]\nrequire_signed = true\ntrusted_keys = [\"{public}\"]\n");
    std::fs::write(dir.path().join("weir.toml"), config).unwrap();

    let o = weir(&["rules", "rules", "--config", "weir.toml"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("unsigned, and signatures are required"), "{}", text(&o));

    let o = weir(&["rule", "sign", "rules/velocity.toml", "--key", "team.key"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    // A signed package alone does not run: the directory needs a signed set.
    let o = weir(&["rules", "rules", "--config", "weir.toml"], dir.path());
    assert!(!o.status.success() && text(&o).contains("no signed rule set"), "{}", text(&o));
    let o = weir(&["rule", "seal", "--rules", "rules", "--key", "team.key"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = weir(&["rules", "rules", "--config", "weir.toml"], dir.path());
    assert!(o.status.success(), "{}", text(&o));

    // Changing the manifest after signing breaks the signature.
    let manifest = std::fs::read_to_string(rules.join("velocity.toml")).unwrap();
    std::fs::write(rules.join("velocity.toml"), manifest.replace("max_count = 10", "max_count = 1000")).unwrap();
    let o = weir(&["rules", "rules", "--config", "weir.toml"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("does not verify with any trusted key"), "{}", text(&o));
}

#[test]
fn compiled_components_are_reused_across_engines_through_the_disk_cache() {
    use weir::engine::{Compilation, Engine};
    let dir = tempdir();
    let spec = |m: &str| weir::manifest::RuleSpec::parse(m).unwrap();
    let manifest = velocity_manifest("1.0.0", 10);
    let first = Engine::new().unwrap().with_cache_dir(dir.path().join("cache"));
    let rule = first.load(spec(&manifest), &guest("velocity"), &manifest).unwrap();
    assert!(matches!(rule.compilation, Compilation::Fresh(_)), "{:?}", rule.compilation);
    let again = first.load(spec(&manifest), &guest("velocity"), &manifest).unwrap();
    assert_eq!(again.compilation, Compilation::Memory);
    // A restart: a new engine finds the compiled component on disk.
    let restarted = Engine::new().unwrap().with_cache_dir(dir.path().join("cache"));
    let other = velocity_manifest("2.0.0", 4);
    let rule = restarted.load(spec(&other), &guest("velocity"), &other).unwrap();
    assert!(matches!(rule.compilation, Compilation::Disk(_)), "{:?}", rule.compilation);
    // A damaged cache file is not trusted: the component is compiled again.
    for f in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(f, b"not a compiled component").unwrap();
        }
    }
    let fresh = Engine::new().unwrap().with_cache_dir(dir.path().join("cache"));
    let rule = fresh.load(spec(&manifest), &guest("velocity"), &manifest).unwrap();
    assert!(matches!(rule.compilation, Compilation::Distrusted(_)), "{:?}", rule.compilation);
}

/// The attack of a planted artifact: another component's compiled code
/// copied over velocity's cache file. `deserialize` would run it as native
/// code; the MAC binds each artifact to its component's digest, so weir
/// compiles velocity afresh and velocity is what runs.
#[test]
fn a_compiled_artifact_planted_in_the_cache_is_not_run() {
    use weir::engine::{Compilation, Engine};
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let manifest = velocity_manifest("1.0.0", 10);
    let spec = weir::manifest::RuleSpec::parse(&manifest).unwrap();
    let engine = Engine::new().unwrap().with_cache_dir(cache.clone());
    engine.load(spec.clone(), &guest("velocity"), &manifest).unwrap();
    crate::util::hostile(&engine, "velocity", "lock", "");
    let artifact = |name: &str| cache.join(format!("{}.cwasm", hex::encode(sha2::Sha256::digest(guest(name)))));
    std::fs::copy(artifact("hostile"), artifact("velocity")).unwrap();

    let restarted = Engine::new().unwrap().with_cache_dir(cache.clone());
    let rule = restarted.load(spec, &guest("velocity"), &manifest).unwrap();
    assert!(matches!(rule.compilation, Compilation::Distrusted(_)), "{:?}", rule.compilation);
    let mut ev = crate::util::evaluator(vec![rule]);
    let mut account = weir::state::AccountState::default();
    for i in 0..20 {
        let d = ev.decide(&crate::util::tx(&format!("t{i}"), i * 10), &mut account, crate::util::position(i));
        assert_ne!(d.event_type, DecisionType::AccountLocked, "the planted code ran: {d:?}");
    }
    // The planted file was replaced by velocity's own, which is then read.
    let again = Engine::new().unwrap().with_cache_dir(cache);
    let rule = again.load(weir::manifest::RuleSpec::parse(&manifest).unwrap(), &guest("velocity"), &manifest).unwrap();
    assert!(matches!(rule.compilation, Compilation::Disk(_)), "{:?}", rule.compilation);
}

/// `weir run` on stdin (piped) with the rules in `rules`, its output in
/// `work/out`, the status endpoint on `addr`, and its log at info level in
/// `work/weir.log`.
pub fn run_on_stdin(rules: &Path, work: &Path, addr: &str, batch_size: usize) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input", "-", "--batch-size", &batch_size.to_string(), "--rules"])
        .arg(rules)
        .arg("--output")
        .arg(work.join("out"))
        .env("WEIR_STATUS_LISTEN", addr)
        .env("WEIR_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("weir.log")).unwrap())
        .spawn()
        .unwrap()
}

/// The body of `GET path` on the status endpoint, as text.
pub fn get_text(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// A rule that runs out of fuel on every transaction is quarantined: the
/// log, `/status` and `/metrics` say so, its failures are logged once per
/// interval rather than once per transaction, and a new version runs again.
#[test]
fn a_quarantined_rule_is_visible_and_a_new_version_lifts_it() {
    let dir = tempdir();
    let rules: PathBuf = dir.path().join("rules");
    weir::packages::export_shipped(&rules).unwrap();
    std::fs::write(rules.join("hostile.wasm"), guest("hostile")).unwrap();
    let manifest = |behaviour: &str| {
        format!(
            "[rule]\nid = \"looper\"\nversion = \"{behaviour}\"\ncomponent = \"hostile.wasm\"\n[params]\nbehaviour = \"{behaviour}\"\n"
        )
    };
    std::fs::write(rules.join("looper.toml"), manifest("loop")).unwrap();
    let addr = free_addr();
    let log_path = dir.path().join("weir.log");
    let mut child = run_on_stdin(&rules, dir.path(), &addr, 50);
    let mut stdin = child.stdin.take().unwrap();
    let lines = weir::demo::generate(400, 50, 31).lines;
    let (first, second) = lines.split_at(200);
    for l in first {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    let quarantined = |s: &Value| s["pipeline"]["rules"]["looper"]["quarantined"] == true;
    let status = wait_status(&addr, "the looping rule quarantined", quarantined);
    assert!(status["pipeline"]["rules"]["looper"]["errors"].as_u64() >= Some(50), "{status:#}");
    assert!(get_text(&addr, "/metrics").contains("weir_rule_quarantined{rule=\"looper\"} 1"));

    std::fs::write(rules.join("looper.toml"), manifest("pass")).unwrap();
    wait_status(&addr, "the new version published", |s| active_label(s, "looper").as_deref() == Some("\"pass\""));
    for l in second {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("rule quarantined") && log.contains("looper"), "{log}");
    let failure_lines = log.lines().filter(|l| l.contains("ran out of fuel") && l.contains("WARN")).count();
    assert_eq!(failure_lines, 1, "the failures were logged once, not per transaction:\n{log}");
    let decisions: Vec<DecisionEvent> = weir_testkit::jsonl(&dir.path().join("out/decisions.jsonl"));
    let last = decisions.last().unwrap();
    let looper = last.rules.iter().find(|r| &*r.rule_id == "looper").unwrap();
    assert_eq!(looper.outcome, RuleOutcome::Pass, "the new version runs: {looper:?}");
    let skipped = decisions
        .iter()
        .filter(|d| d.rules.iter().any(|r| r.error.as_deref().is_some_and(|e| e.contains("quarantined"))))
        .count();
    assert!(skipped > 0, "the quarantined version was skipped, with its failure policy recorded");
}

/// `/metrics` on a running weir is valid exposition (every sample line is
/// `name{labels} value` of a family it declares), and the Grafana dashboard
/// in `dashboards/weir.json` queries only metrics weir exports.
#[test]
fn the_grafana_dashboard_queries_only_metrics_weir_exports() {
    let dir = tempdir();
    let rules: PathBuf = dir.path().join("rules");
    weir::packages::export_shipped(&rules).unwrap();
    let addr = free_addr();
    let mut child = run_on_stdin(&rules, dir.path(), &addr, 50);
    let mut stdin = child.stdin.take().unwrap();
    for line in weir::demo::generate(500, 50, 3).lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    wait_status(&addr, "the traffic decided", |s| s["pipeline"]["records"].as_u64() >= Some(500));
    let metrics = get_text(&addr, "/metrics");
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let series = exported_series(&metrics);
    for expected in ["weir_rule_evaluation_seconds_bucket", "weir_commit_seconds_count", "weir_decisions_total"] {
        assert!(series.contains(expected), "{expected} missing:\n{metrics}");
    }
    let used = dashboard_metrics();
    assert!(used.len() >= 15, "the dashboard's panels query weir's metrics ({} references)", used.len());
    for (name, query) in &used {
        // Families with a member per Kafka partition exist only on Kafka
        // (kafka::metrics_on_kafka_include_lag_and_latency checks them there).
        if !KAFKA_ONLY.contains(&name.as_str()) {
            assert!(series.contains(name), "the dashboard queries {name}, which weir does not export ({query})");
        }
    }
}

/// Metric families whose members are Kafka partitions.
pub const KAFKA_ONLY: [&str; 1] = ["weir_consumer_lag"];

/// The series names an exposition declares (histograms: `_bucket`, `_sum`,
/// `_count`), after checking every sample line is `name{labels} value` of a
/// declared family.
pub fn exported_series(metrics: &str) -> HashSet<String> {
    let mut series = HashSet::new();
    for line in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        series.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                series.insert(format!("{name}{suffix}"));
            }
        }
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(series.contains(name), "{name} has no # TYPE line:\n{metrics}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    series
}

/// Every metric name `dashboards/weir.json` queries, with the query.
pub fn dashboard_metrics() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/weir.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .collect();
    queries.extend(
        dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["query"].as_str().map(str::to_owned)),
    );
    let mut names = Vec::new();
    for query in &queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("weir_") {
            let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            names.push((name, query.clone()));
        }
    }
    names
}

/// The rollback archive keeps the newest versions of a rule only, so
/// deploys do not grow the rules directory without end.
#[test]
fn the_archive_keeps_the_newest_versions_of_a_rule() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    let mut hashes = Vec::new();
    for v in 0..weir::packages::ARCHIVED_VERSIONS + 5 {
        let package = velocity_package(&dir.path().join(format!("v{v}")), &format!("{v}.0.0"), 10);
        let files = weir::packages::PackageFiles::read(&package.join("velocity.toml")).unwrap();
        weir::packages::archive(&files, &rules).unwrap();
        hashes.push(files.hash);
    }
    let kept = std::fs::read_dir(rules.join(weir::packages::ARCHIVE_DIR).join("velocity")).unwrap().count();
    assert_eq!(kept, weir::packages::ARCHIVED_VERSIONS);
    let newest = weir::packages::archived(&rules, "velocity", None).unwrap().unwrap();
    assert_eq!(&newest.hash, hashes.last().unwrap(), "the newest is kept for rollback");
}
