//! `weir rule rollback`: the version of a rule that ran before the current
//! one, redeployed from the archive.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::config::Config;
use weir::packages;

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The rule id.
    pub id: String,
    /// The rules directory (default: `rules.dir` of the config).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl RollbackArgs {
    /// Redeploys the version that ran before the current one.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let mut config = Config::load(self.config.as_deref())?;
        let dir = self.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
        config.rules.dir = dir.clone();
        let done = packages::rollback(&dir, &self.id, &config.rules.validator()?)?;
        println!(
            "Rolled back {} in {} to {} ({}){}.",
            self.id,
            dir.display(),
            done.to.spec.version_label,
            done.to.hash,
            done.replaced.map(|c| format!(", replacing {} ({})", c.spec.version_label, c.hash)).unwrap_or_default()
        );
        super::seal_hint(&config, &dir);
        Ok(ExitCode::SUCCESS)
    }
}
