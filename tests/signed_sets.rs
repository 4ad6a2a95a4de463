//! Signed rule sets (`rules.require_signed`): a deployer without a key
//! cannot change what runs — not by deleting packages, putting back an
//! older signed set, mixing two signed sets, or a failing cases file — and
//! every refusal is reported in the log, `/status` and `/metrics`. Without
//! signatures, a change that would leave no rule running is refused too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use weir::engine::Engine;
use weir::live::LiveRules;
use weir::packages::{self, SET_FILE, SET_SIGNATURE_FILE, Trust, Validator};

use crate::deploy::{free_addr, get_text, velocity_manifest, velocity_package, wait_status};
use crate::util::{guest, tempdir, text, weir};

/// A rules directory with velocity (`max_count`) and a second rule,
/// `steady`, that always passes.
fn two_rules(rules: &Path, max_count: u32) {
    velocity_package(rules, "1.0.0", max_count);
    std::fs::write(rules.join("hostile.wasm"), guest("hostile")).unwrap();
    let steady =
        "[rule]\nid = \"steady\"\nversion = \"1\"\ncomponent = \"hostile.wasm\"\n[params]\nbehaviour = \"pass\"\n";
    std::fs::write(rules.join("steady.toml"), steady).unwrap();
}

struct Signer {
    key_file: PathBuf,
    public: String,
    memory: PathBuf,
    cache: PathBuf,
}

impl Signer {
    fn new(dir: &Path) -> Signer {
        let key_file = dir.join("team.key");
        let public = packages::write_key_pair(&key_file).unwrap();
        Signer { key_file, public, memory: dir.join("cache/rule-sets/rules"), cache: dir.join("cache") }
    }

    /// The validator of a weir with `require_signed`, remembering sets in
    /// its private directory.
    fn validator(&self) -> Validator {
        let mut trust = Trust::new(true, std::slice::from_ref(&self.public)).unwrap();
        trust.memory = Some(self.memory.clone());
        Validator::new(Engine::new().unwrap().with_cache_dir(self.cache.clone()), trust)
    }

    fn seal(&self, rules: &Path) -> u64 {
        packages::seal(rules, &self.key_file, &self.validator(), None, None, false).unwrap().statement.sequence
    }
}

/// The versions running now, by rule id.
fn running(live: &LiveRules) -> Vec<(String, String)> {
    live.current().set.rules().iter().map(|r| (r.spec.id.clone(), r.hash.to_string())).collect()
}

fn copy_files(from: &Path, to: &Path, names: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for name in names {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

const SET_FILES: [&str; 2] = [SET_FILE, SET_SIGNATURE_FILE];
const VELOCITY_FILES: [&str; 3] = ["velocity.toml", "velocity.sig", "velocity.cases.toml"];

#[test]
fn a_deployer_without_the_key_cannot_change_what_runs() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    two_rules(&rules, 10);
    let signer = Signer::new(dir.path());
    assert_eq!(signer.seal(&rules), 1);
    let v1 = packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash;
    let first = dir.path().join("set-1");
    copy_files(&rules, &first, &SET_FILES);
    copy_files(&rules, &first, &VELOCITY_FILES);

    // A new velocity, sealed as set #2: it runs.
    std::fs::write(rules.join("velocity.toml"), velocity_manifest("2.0.0", 4)).unwrap();
    assert_eq!(signer.seal(&rules), 2);
    let second = dir.path().join("set-2");
    copy_files(&rules, &second, &SET_FILES);
    copy_files(&rules, &second, &VELOCITY_FILES);
    let live = LiveRules::start(&rules, signer.validator()).unwrap();
    let sealed = running(&live);
    assert_eq!(sealed.len(), 2);
    assert_eq!(live.status().signed_set.map(|s| s.sequence), Some(2));

    let refused_now = |live: &LiveRules| live.status().set_refused.map(|r| r.reason).unwrap_or_default();

    // Deleting a package: refused, both rules keep running.
    std::fs::rename(rules.join("steady.toml"), dir.path().join("steady.toml")).unwrap();
    assert_eq!(live.rescan().unwrap(), None);
    assert_eq!(running(&live), sealed);
    assert!(refused_now(&live).contains("lists `steady`"), "{}", refused_now(&live));
    std::fs::rename(dir.path().join("steady.toml"), rules.join("steady.toml")).unwrap();
    live.rescan().unwrap();
    assert!(live.status().set_refused.is_none(), "{:?}", live.status().set_refused);

    // Replaying set #1 with its signed velocity: refused as older.
    copy_files(&first, &rules, &SET_FILES);
    copy_files(&first, &rules, &VELOCITY_FILES);
    assert_eq!(live.rescan().unwrap(), None);
    assert_eq!(running(&live), sealed);
    assert!(refused_now(&live).contains("older than #2"), "{}", refused_now(&live));

    // Mixing: set #2's statement with set #1's (signed) velocity.
    copy_files(&second, &rules, &SET_FILES);
    assert_eq!(live.rescan().unwrap(), None);
    assert_eq!(running(&live), sealed);
    assert!(refused_now(&live).contains("lists `velocity`"), "{}", refused_now(&live));

    // A failing cases file next to the sealed version does not take it away.
    copy_files(&second, &rules, &VELOCITY_FILES);
    let failing = std::fs::read_to_string(rules.join("velocity.cases.toml")).unwrap().replace("\"pass\"", "\"lock\"");
    std::fs::write(rules.join("velocity.cases.toml"), failing).unwrap();
    live.rescan().unwrap();
    assert_eq!(running(&live), sealed);
    assert!(live.status().set_refused.is_none(), "{:?}", live.status().set_refused);
    let status = live.status();
    assert!(status.set_refusals_total >= 3, "{status:?}");
    drop(live);
    // ... not at a restart either.
    let restarted = LiveRules::start(&rules, signer.validator()).unwrap();
    assert_eq!(running(&restarted), sealed);
    drop(restarted);

    // A restart on the older set is refused: the accepted sequence is remembered.
    copy_files(&first, &rules, &SET_FILES);
    copy_files(&first, &rules, &VELOCITY_FILES);
    let err = LiveRules::start(&rules, signer.validator()).err().expect("an older set is refused at start");
    assert!(err.to_string().contains("older than #2"), "{err}");

    // A rollback is a new signed set: #3, with velocity 1.0.0 again.
    assert_eq!(signer.seal(&rules), 3);
    let rolled_back = LiveRules::start(&rules, signer.validator()).unwrap();
    let velocity = running(&rolled_back).into_iter().find(|(id, _)| id == "velocity").unwrap();
    assert_eq!(velocity.1, v1);
}

#[test]
fn unsigned_packages_expired_sets_and_empty_sets() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    two_rules(&rules, 10);
    let signer = Signer::new(dir.path());
    // No set at all.
    let err = LiveRules::start(&rules, signer.validator()).err().unwrap();
    assert!(err.to_string().contains("no signed rule set"), "{err}");
    // An expired set.
    packages::seal(&rules, &signer.key_file, &signer.validator(), None, Some("2020-01-01T00:00:00Z".into()), false)
        .unwrap();
    let err = LiveRules::start(&rules, signer.validator()).err().unwrap();
    assert!(err.to_string().contains("expired"), "{err}");
    signer.seal(&rules);
    let live = LiveRules::start(&rules, signer.validator()).unwrap();
    // A package the set does not list is refused; the set still runs.
    std::fs::write(rules.join("extra.toml"), velocity_manifest("9", 4).replace("\"velocity\"", "\"extra\"")).unwrap();
    std::fs::write(rules.join("extra.wasm"), guest("velocity")).unwrap();
    live.rescan().unwrap();
    let extra = live.refused().into_iter().find(|r| r.path.ends_with("extra.toml")).unwrap();
    assert!(extra.reason.contains("unsigned"), "{}", extra.reason);
    // Signed, but still not in the set.
    packages::sign_package(&rules.join("extra.toml"), &signer.key_file).unwrap();
    live.rescan().unwrap();
    let extra = live.refused().into_iter().find(|r| r.path.ends_with("extra.toml")).unwrap();
    assert!(extra.reason.contains("not in the signed rule set"), "{}", extra.reason);
    assert_eq!(live.current().set.rules().len(), 2);
    std::fs::remove_file(rules.join("extra.toml")).unwrap();
    for f in ["extra.wasm", "extra.sig"] {
        std::fs::remove_file(rules.join(f)).unwrap();
    }
    // An empty directory runs only when sealed as empty.
    for f in ["velocity.toml", "steady.toml"] {
        std::fs::remove_file(rules.join(f)).unwrap();
    }
    assert!(packages::seal(&rules, &signer.key_file, &signer.validator(), None, None, false).is_err());
    packages::seal(&rules, &signer.key_file, &signer.validator(), None, None, true).unwrap();
    live.rescan().unwrap();
    assert!(live.current().set.is_empty(), "a signed empty set stops every rule");

    // Without signatures: deleting every package is refused unless allowed.
    let plain = dir.path().join("plain");
    two_rules(&plain, 10);
    let validator = |allow_empty| {
        let trust = Trust { allow_empty, ..Trust::default() };
        Validator::new(Engine::new().unwrap(), trust)
    };
    for allow_empty in [false, true] {
        let live: Arc<LiveRules> = LiveRules::start(&plain, validator(allow_empty)).unwrap();
        let moved = dir.path().join("moved");
        std::fs::create_dir_all(&moved).unwrap();
        for f in ["velocity.toml", "steady.toml"] {
            std::fs::rename(plain.join(f), moved.join(f)).unwrap();
        }
        live.rescan().unwrap();
        assert_eq!(live.current().set.is_empty(), allow_empty);
        assert_eq!(live.status().set_refused.is_some(), !allow_empty);
        for f in ["velocity.toml", "steady.toml"] {
            std::fs::rename(moved.join(f), plain.join(f)).unwrap();
        }
    }
}

/// The running weir's view: a deletion under `require_signed` is refused,
/// logged at ERROR, and shown in `/status` and `/metrics`; `weir rule seal`
/// and `weir rules` on the command line.
#[test]
fn a_refused_rule_set_is_reported_by_a_running_weir() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    two_rules(&rules, 10);
    let o = weir(&["rule", "keygen", "--out", "team.key"], dir.path());
    let public = text(&o).lines().last().unwrap().trim().to_owned();
    let config = format!(
        "[rules]\nrequire_signed = true\ntrusted_keys = [\"{public}\"]\ncache_dir = \"{}\"\n",
        dir.path().join("cache").display()
    );
    std::fs::write(dir.path().join("weir.toml"), config).unwrap();
    let o = weir(&["rules", "rules", "--config", "weir.toml"], dir.path());
    assert!(!o.status.success() && text(&o).contains("no signed rule set"), "{}", text(&o));
    let o = weir(&["rule", "seal", "--rules", "rules", "--key", "team.key", "--config", "weir.toml"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rule set #1 (2 rules)"), "{}", text(&o));
    let o = weir(&["rules", "rules", "--config", "weir.toml"], dir.path());
    assert!(o.status.success() && text(&o).contains("signed rule set #1"), "{}", text(&o));

    let addr = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input", "-", "--config", "weir.toml", "--rules", "rules", "--output", "out"])
        .current_dir(dir.path())
        .env("WEIR_STATUS_LISTEN", &addr)
        .env("WEIR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("weir.log")).unwrap())
        .spawn()
        .unwrap();
    wait_status(&addr, "the signed set running", |s| s["rules"]["signed_set"]["sequence"] == 1);
    std::fs::remove_file(rules.join("steady.toml")).unwrap();
    let status = wait_status(&addr, "the deletion refused", |s| !s["rules"]["set_refused"].is_null());
    assert_eq!(status["rules"]["active"].as_array().map(Vec::len), Some(2), "{status:#}");
    let metrics = get_text(&addr, "/metrics");
    assert!(metrics.contains("weir_rule_set_refused 1"), "{metrics}");
    assert!(metrics.contains("weir_rule_set_sequence 1"), "{metrics}");
    let mut stdin = child.stdin.take().unwrap();
    for line in weir::demo::generate(20, 5, 7).lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("ERROR") && l.contains("lists `steady`")), "{log}");
    let decisions: Vec<weir::events::DecisionEvent> = weir_testkit::jsonl(&dir.path().join("out/decisions.jsonl"));
    assert!(decisions.iter().all(|d| d.rules.len() == 2), "both rules still decide every transaction");
}
