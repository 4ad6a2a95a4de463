//! The Tributary Bank story as a test: the scripted story against a real
//! broker (the project's, started once by `scripts/kafka.sh`, or
//! `WEIR_TEST_KAFKA_BOOTSTRAP`) and a real `weir` process, with each step's
//! outcome asserted here as well as by the story itself.

use tributary::story;

#[test]
fn the_tributary_story_runs_end_to_end() {
    let bootstrap = story::broker().expect("a broker");
    let weir = story::weir_binary_for_tests().expect("the weir binary");
    let dir = tempfile::Builder::new().prefix("tributary-test-").tempdir().unwrap();
    let opts = story::Options { bootstrap, weir, work_dir: dir.path().to_owned(), prefix: story::fresh_prefix() };
    let mut narration = Vec::new();
    let result = story::run(&opts, &mut narration);
    let text = String::from_utf8_lossy(&narration);
    println!("{text}");
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!("{e:#}\n--- weir.log (last lines, newest first)\n{}", tail.join("\n"));
        }
    };

    // 1. Concert tickets: a v1 and a v2 event, both verified.
    assert_eq!(report.concert, [(1, "TransactionVerified".to_owned()), (2, "TransactionVerified".to_owned())]);
    // 2. The fraud chain ends in a lock, the bank applies it and refuses locally.
    assert_eq!(report.fraud_chain.last().map(String::as_str), Some("AccountLocked"));
    assert!(report.bank_lock_reason.as_deref().is_some_and(|r| r.contains("card-testing")), "{report:?}");
    assert!(report.refused_after_lock);
    // ...an analyst unlocks it: the bank's flag clears, the owner shops, the thief's next
    // cash-out locks it again, and the bank's flag follows.
    assert_eq!(report.after_unlock, ["TransactionVerified", "AccountLocked"]);
    assert!(report.bank_unlocked_then_locked);
    assert_eq!(report.unlocks_published, 1, "weir wrote the unlock on once");
    // The analyst resolves the first case as fraud; the new lock is in an open case of its own.
    assert_eq!(report.bram_cases, ["fraud", "open"]);
    // The laptop on the block list: suspected on another account, by the list.
    assert!(report.blocked_device.iter().any(|f| f == "blocklist:BLOCKED_DEVICE"), "{:?}", report.blocked_device);
    // 3. Confirmation: suspected, then verified at the same merchant, suspected elsewhere.
    assert_eq!(report.bets[..3], ["FraudSuspected", "TransactionVerified", "FraudSuspected"]);
    // ...and the confirmation still holds after weir's restart.
    assert_eq!(report.bets[3], "TransactionVerified");
    // 4. Outage: purchases succeed, nothing is decided until weir is back, then all of them.
    assert_eq!(report.accepted_while_stopped, 7);
    assert_eq!(report.decided_while_stopped, 0);
    assert_eq!(report.decided_after_restart, 7);
    assert!(report.lock_after_restart.is_some());
    assert!(report.refused_after_restart);
    // 5. Notifications: four emails (three locks, one unlock), three pushes (suspicions), none twice.
    let channels: Vec<&str> = report.notifications.iter().map(|n| n.channel.as_str()).collect();
    assert_eq!(channels.iter().filter(|c| **c == "email").count(), 4, "{channels:?}");
    assert_eq!(channels.iter().filter(|c| **c == "push").count(), 3, "{channels:?}");
    let unlocked = report.notifications.iter().find(|n| n.event_type == "AccountUnlocked").expect("an unlock email");
    assert!(unlocked.message.contains("your account is unlocked"), "{}", unlocked.message);
    assert_eq!(report.redelivered, 7, "the rewound notifier read every decision and the unlock again");
    assert_eq!(report.resent, 0);
    // Exactly one decision per published purchase; none for refused ones; both schema versions.
    assert!(report.decisions_per_transaction.values().all(|n| *n == 1), "{:?}", report.decisions_per_transaction);
    assert_eq!(report.decisions_per_transaction.len(), 20, "purchases the bank accepted");
    assert_eq!(report.refused.len(), 2);
    assert_eq!(report.schema_versions_decided, [1, 2].into());
    assert_eq!(report.dead_letters, 0);
    assert!(text.contains("The story is complete"), "{text}");
}
