//! `weir rule ...`: a rule's life cycle, from a new crate to its retirement,
//! one file per step.

mod build;
mod deploy;
mod keygen;
mod new;
mod retire;
mod rollback;
mod seal;
mod sign;
mod test;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum RuleCommand {
    /// Scaffold a rule crate that builds and passes its tests as is.
    New(new::NewArgs),
    /// Build a rule crate for wasm32-wasip2 and lay out its package in target/weir/.
    Build(build::BuildArgs),
    /// Run sandbox cases against a rule component, in the production sandbox.
    ///
    /// Reports each case; exits non-zero if any case fails or the rule errs.
    #[command(after_long_help = test::CASES_FORMAT)]
    Test(test::TestArgs),
    /// Deploy a package into the rules directory: validated first, then
    /// copied atomically; a running weir swaps to it without a restart.
    ///
    /// The package's manifest, component, self-test cases (`<id>.cases.toml`)
    /// and signature (`<id>.sig`) are written under hidden names and renamed
    /// into place, the manifest last. The replaced version is archived for
    /// `weir rule rollback`.
    Deploy(deploy::DeployArgs),
    /// Redeploy the version of a rule that ran before the current one.
    Rollback(rollback::RollbackArgs),
    /// Remove a rule's package: a running weir stops running the rule.
    Retire(retire::RetireArgs),
    /// Sign a package (ed25519) for hosts with `rules.require_signed = true`.
    Sign(sign::SignArgs),
    /// Make a signing key pair: the secret key to a file, the public key printed.
    Keygen(keygen::KeygenArgs),
    /// Sign the rules directory as a whole: every package, and a rule-set
    /// statement listing their versions under the next sequence number.
    ///
    /// A weir with `rules.require_signed = true` runs the directory only
    /// when it matches the newest signed set exactly, and never goes back to
    /// an older set: deleting packages, putting back an older signed
    /// version, or mixing two sets is refused, and the running rules stay.
    /// After a deploy, rollback or retire on such a host, seal again.
    Seal(seal::SealArgs),
}

impl RuleCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            RuleCommand::New(args) => args.run(),
            RuleCommand::Build(args) => args.run(),
            RuleCommand::Test(args) => args.run(),
            RuleCommand::Deploy(args) => args.run(),
            RuleCommand::Rollback(args) => args.run(),
            RuleCommand::Retire(args) => args.run(),
            RuleCommand::Sign(args) => args.run(),
            RuleCommand::Keygen(args) => args.run(),
            RuleCommand::Seal(args) => args.run(),
        }
    }
}

/// The command that rolls `id` back in `dir`, with the same `--rules`
/// (and `--config`) as the command that changed it: a bare `weir rule
/// rollback` would look in the config's directory instead.
fn rollback_command(id: &str, dir: &std::path::Path, config: Option<&std::path::Path>) -> String {
    let config = config.map(|c| format!(" --config {}", c.display())).unwrap_or_default();
    format!("weir rule rollback {id} --rules {}{config}", dir.display())
}

/// After a change to a rules directory on a host that runs only signed
/// rule sets: the change waits for a new seal, and this says so.
fn seal_hint(config: &weir::config::Config, dir: &std::path::Path) {
    if config.rules.require_signed {
        println!(
            "This host runs only a signed rule set: the change takes effect once sealed with `weir rule seal --rules {} --key KEY`.",
            dir.display()
        );
    }
}
