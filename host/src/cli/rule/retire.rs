//! `weir rule retire`: a rule's package removed, so a running weir stops
//! running the rule (archived, so a rollback brings it back).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::config::Config;
use weir::packages;

#[derive(Args, Debug)]
pub struct RetireArgs {
    /// The rule id.
    pub id: String,
    /// The rules directory (default: `rules.dir` of the config).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl RetireArgs {
    /// Removes the rule's package: a running weir retires the rule.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.config.as_deref())?;
        let dir = self.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
        let retired = packages::retire(&dir, &self.id)?;
        println!(
            "Retired {} {} ({}) from {}; `{}` brings it back.",
            self.id,
            retired.spec.version_label,
            retired.hash,
            dir.display(),
            super::rollback_command(&self.id, &dir, self.config.as_deref())
        );
        super::seal_hint(&config, &dir);
        Ok(ExitCode::SUCCESS)
    }
}
