//! [`FromParams`]: a rule's parameters read and checked once per rule
//! instance instead of on every transaction.
//!
//! `weir_sdk::rule!(evaluate, Config)` hands each evaluation the `Config`
//! parsed from the rule's [`Params`]. It is parsed on the first evaluation
//! and kept in the `Params` it came from, which live as long as the
//! parameters stay the same: the wasm instance (the host gives an instance
//! its manifest's parameters when it creates it), the test harness, the
//! natively loaded rule version.

use std::any::Any;

use super::declare::Param;
use super::set::Params;
use crate::{Context, Error, Transaction, Verdict};

/// A rule's parameters as one struct, parsed from the manifest's `[params]`
/// once per rule instance.
///
/// With `weir_sdk::rule!(evaluate, Config)`, `evaluate` takes a third
/// argument, `&Config`. An error from `from_params` (a [`crate::ParamError`]
/// converts with `?`) is the rule's error on every evaluation, and
/// `evaluate` is never called: a misconfigured rule fails whatever the
/// transaction.
///
/// The struct is kept with the parameters, which the host may share between
/// threads, so it owns its data (`String`, `Vec`, [`crate::Table`], numbers).
///
/// `PARAMS` declares every parameter `from_params` reads: its type,
/// default, range and doc ([`Param`]). The host checks the manifest against
/// it before the rule runs and fills in the defaults, so `from_params`
/// reads each one with [`Params::param`] (or [`Params::param_opt`] for an
/// optional one, [`Params::typed_table`] for a table) and repeats no
/// default or range.
pub trait FromParams: Sized + Send + Sync + 'static {
    /// The declared parameters.
    const PARAMS: &'static [Param];
    fn from_params(params: &Params) -> Result<Self, Error>;
}

impl Params {
    /// Calls `f` with these parameters parsed as `C`: parsed on the first
    /// call, then kept.
    fn with_parsed<C: FromParams, R>(&self, f: impl FnOnce(Result<&C, &Error>) -> R) -> R {
        let parsed: &(dyn Any + Send + Sync) = &**self.parsed.get_or_init(|| Box::new(C::from_params(self)));
        match parsed.downcast_ref::<Result<C, Error>>() {
            Some(parsed) => f(parsed.as_ref()),
            // One rule reads one `Params`, so this is never taken; should
            // another type be asked for, it is parsed for this call alone.
            None => f(C::from_params(self).as_ref()),
        }
    }
}

/// Evaluates `tx` with the rule's parameters parsed as `C`: the function
/// `weir_sdk::rule!(evaluate, Config)` exports.
#[doc(hidden)]
pub fn evaluate_configured<C, F>(tx: &Transaction, ctx: &mut Context<'_>, evaluate: F) -> Result<Verdict, Error>
where
    C: FromParams,
    F: FnOnce(&Transaction, &mut Context<'_>, &C) -> Result<Verdict, Error>,
{
    let params = ctx.params();
    params.with_parsed(|parsed: Result<&C, &Error>| match parsed {
        Ok(config) => evaluate(tx, ctx, config),
        Err(e) => Err(Error::msg(e.message())),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::prelude::*;
    use crate::testing::{Harness, tx};

    /// How often `Config::from_params` ran.
    static PARSED: AtomicUsize = AtomicUsize::new(0);

    struct Config {
        limit: i64,
    }

    impl FromParams for Config {
        const PARAMS: &'static [Param] = &[Param::integer("limit", 100).min(0)];
        fn from_params(params: &Params) -> Result<Self, Error> {
            PARSED.fetch_add(1, Ordering::Relaxed);
            Ok(Config { limit: params.param("limit")? })
        }
    }

    fn evaluate(tx: &Transaction, _: &mut Context, config: &Config) -> Result<Verdict, Error> {
        Ok(if tx.amount.minor_units > config.limit { Verdict::suspect("OVER", "over") } else { Verdict::pass() })
    }

    crate::rule!(evaluate, Config);

    #[test]
    fn parameters_are_parsed_once_and_a_bad_one_fails_every_evaluation() {
        let mut h = Harness::new(RULE).param("limit", 20_000);
        let before = PARSED.load(Ordering::Relaxed);
        assert!(h.run(&tx().amount(20_000, "EUR").build()).unwrap().is_pass());
        assert_eq!(h.run(&tx().amount(20_001, "EUR").build()).unwrap().reason_code, "OVER");
        assert_eq!(PARSED.load(Ordering::Relaxed) - before, 1, "parsed on the first evaluation only");

        let mut h = Harness::new(RULE).param("limit", -1);
        for _ in 0..2 {
            let err = h.run(&tx().build()).unwrap_err();
            assert_eq!(err.message(), "parameter `limit`: expected an integer of at least 0, found an integer (-1)");
        }
    }
}
