//! A deploy that lands while the input is idle decides the very next
//! record: the pipeline adopts rules published while it waited for input,
//! not only between two full batches. On Kafka: `kafka::a_deploy_while_idle_decides_the_next_record_on_kafka`.

use std::io::Write;

use weir::events::DecisionEvent;

use crate::deploy::{active_label, free_addr, run_on_stdin, velocity_manifest, velocity_package, wait_status};
use crate::util::{tempdir, text};

#[test]
fn a_deploy_while_idle_decides_the_next_record_embedded() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_package(&rules, "1.0.0", 10);
    let addr = free_addr();
    // A large batch: without adopting on the first record of a batch, the
    // swap would wait for thousands of records.
    let mut child = run_on_stdin(&rules, dir.path(), &addr, 10_000);
    let mut stdin = child.stdin.take().unwrap();
    let lines = weir::demo::generate(40, 10, 3).lines;
    let (before, after) = lines.split_at(20);
    for line in before {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    wait_status(&addr, "the first records decided", |s| s["pipeline"]["records"].as_u64() == Some(20));

    // The input is idle; version 2 is deployed and published.
    std::fs::write(rules.join("velocity.toml"), velocity_manifest("2.0.0", 4)).unwrap();
    wait_status(&addr, "version 2 published", |s| active_label(s, "velocity").as_deref() == Some("\"2.0.0\""));
    let v2 = weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash;
    for line in after {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let decisions: Vec<DecisionEvent> = weir_testkit::jsonl(&dir.path().join("out/decisions.jsonl"));
    let version =
        |d: &DecisionEvent| d.rules.iter().find(|r| &*r.rule_id == "velocity").unwrap().rule_version.to_string();
    let ids = |lines: &[String]| -> Vec<String> {
        let value = |l: &String| serde_json::from_str::<serde_json::Value>(l).ok();
        lines.iter().filter_map(|l| value(l)?["transaction_id"].as_str().map(str::to_owned)).collect()
    };
    let (ids_before, ids_after) = (ids(before), ids(after));
    assert!(!ids_after.is_empty());
    for d in &decisions {
        let expected = if ids_after.contains(&d.transaction_id) { &v2 } else { &version(&decisions[0]) };
        assert!(ids_before.contains(&d.transaction_id) || ids_after.contains(&d.transaction_id));
        assert_eq!(&version(d), expected, "{} was decided by the wrong version", d.transaction_id);
    }
    assert_ne!(version(&decisions[0]), v2);
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(log.contains("after line 20"), "the swap took effect right after the records before it:\n{log}");
}
