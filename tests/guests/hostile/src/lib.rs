//! A rule that misbehaves on purpose, for the sandbox tests.
//!
//! The `behaviour` parameter picks what it does: `loop` spins forever,
//! `alloc` allocates without bound, `stack` recurses without bound, `panic`
//! panics, `panic-on:<transaction id>` panics on that transaction only,
//! `error` returns an error, `lock` locks, `hoard` writes 64 KiB under a
//! new key every transaction, `fill:<bytes>` keeps one value of that many
//! bytes, `write-loop` writes without end, `huge-message` explains itself in
//! 2 MiB (as much as the largest fuel allows building), `escape` puts terminal escapes in its reason, `memfill` fills
//! 8 MiB again and again (bulk memory), `max-verdict`
//! explains itself with everything the host's limits allow (in characters
//! JSON must escape), `every-other:<behaviour>` does `<behaviour>` when the
//! transaction id ends in an odd digit and passes otherwise, anything else
//! passes.
//! Every behaviour first writes `touched` to the account state, so tests can
//! check that a failed evaluation leaves no state behind.

use std::hint::black_box;
use weir_sdk::prelude::*;

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    let behaviour: String = ctx.param("behaviour")?;
    ctx.set("touched", &tx.transaction_id);
    match behaviour.strip_prefix("every-other:") {
        Some(inner) if tx.transaction_id.bytes().last().is_some_and(|b| b % 2 == 1) => run(inner, tx, ctx),
        Some(_) => Ok(Verdict::pass()),
        None => run(&behaviour, tx, ctx),
    }
}

fn run(behaviour: &str, tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    match behaviour {
        "loop" => {
            let mut i: u64 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "alloc" => {
            // Reserve without touching, so memory runs out before fuel does.
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(Vec::with_capacity(1 << 20)));
            }
        }
        "stack" => Ok(Verdict::score(recurse(black_box(1)) as u32, "DEEP", "unreachable")),
        "panic" => panic!("hostile rule panicked on {}", tx.transaction_id),
        "error" => Err(Error::msg("hostile rule gave up")),
        "lock" => Ok(Verdict::lock("HOSTILE_LOCK", "locked by the hostile rule")),
        "hoard" => {
            let n: u64 = ctx.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
            ctx.set(&format!("hoard-{n}"), "x".repeat(64 * 1024));
            ctx.set("n", (n + 1).to_string());
            Ok(Verdict::pass())
        }
        "write-loop" => {
            let value = "y".repeat(1 << 20);
            let mut n: u64 = 0;
            loop {
                ctx.set(&format!("k{n}"), &value);
                n = black_box(n + 1);
            }
        }
        "max-verdict" => {
            use weir_sdk::limits::{EVIDENCE_MAX, EVIDENCE_NAME_MAX, EVIDENCE_VALUE_MAX, MESSAGE_MAX, REASON_CODE_MAX};
            let mut verdict = Verdict::suspect(&"M".repeat(REASON_CODE_MAX), "\"".repeat(MESSAGE_MAX));
            for i in 0..EVIDENCE_MAX {
                let name = format!("{i:0>width$}", width = EVIDENCE_NAME_MAX);
                verdict = verdict.with(&name, "\\".repeat(EVIDENCE_VALUE_MAX));
            }
            Ok(verdict)
        }
        "memfill" => {
            // Bulk memory: one `memory.fill` instruction per pass over 8 MiB.
            let mut block = vec![0u8; 8 << 20];
            let mut i: u8 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
                block.fill(i);
                black_box(&block);
            }
        }
        "huge-message" => Ok(Verdict::suspect("HUGE", "m".repeat(2 << 20))),
        "many-lists" => {
            // Asks about one list after another; the host allows eight per evaluation.
            let on_any = (0..100).any(|i| ctx.in_list(&format!("list-{i}"), &tx.account_id));
            Ok(if on_any { Verdict::suspect("LISTED", "on a list") } else { Verdict::pass() })
        }
        "same-list" => {
            // The same list a thousand times is one list.
            let hits = (0..1000).filter(|_| ctx.in_list("list-0", &tx.account_id)).count();
            Ok(if hits > 0 { Verdict::suspect("LISTED", "on list-0") } else { Verdict::pass() })
        }
        "escape" => Ok(Verdict::suspect("ESC\x1b[2J", "clears your terminal\x1b[2J")),
        b if b.starts_with("fill:") => {
            let bytes: usize = b["fill:".len()..].parse().map_err(|_| Error::msg("fill:<bytes>"))?;
            ctx.set("fill", "f".repeat(bytes));
            Ok(Verdict::pass())
        }
        b if b.strip_prefix("panic-on:") == Some(tx.transaction_id.as_str()) => {
            panic!("hostile rule panicked on {}", tx.transaction_id)
        }
        _ => Ok(Verdict::pass()),
    }
}

// Recursing without end is the point.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    recurse(black_box(n).wrapping_add(1)).wrapping_mul(black_box(3))
}

/// The one parameter: which misbehaviour.
const PARAMS: &[Param] = &[Param::text("behaviour", "pass").doc("What the rule does; see the crate docs.")];

weir_sdk::rule!(evaluate, params = PARAMS);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::testing::{Harness, tx};

    #[test]
    fn passes_by_default_and_errors_on_request() {
        assert!(Harness::new(RULE).run(&tx().build()).unwrap().is_pass());
        let err = Harness::new(RULE).param("behaviour", "error").run(&tx().build()).unwrap_err();
        assert_eq!(err.message(), "hostile rule gave up");
    }
}
