//! `weir rules`: which packages in a rules directory load, and which a
//! running weir would refuse, and why.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::config::Config;
use weir::live::LiveRules;

#[derive(Args, Debug)]
pub struct RulesArgs {
    /// The rules directory.
    #[arg(default_value = "rules")]
    pub dir: PathBuf,
    /// Configuration file (trusted keys, compile cache).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl RulesArgs {
    /// Lists the loaded and refused packages; fails if any is refused.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let mut config = Config::load(self.config.as_deref())?;
        config.rules.dir = self.dir.clone();
        // The same loader as a running weir's: what it would run, what it would refuse.
        let live = LiveRules::load(&self.dir, config.rules.validator()?)?;
        let generation = live.current();
        for r in generation.set.rules() {
            println!(
                "  loaded   {:<16} {:<8} {:<8} {}",
                r.spec.id,
                r.spec.version_label,
                r.spec.mode.to_string(),
                r.hash
            );
        }
        let refused = live.refused();
        for r in &refused {
            println!("  REFUSED  {}: {}", r.path.display(), r.reason);
        }
        let status = live.status();
        if let Some(set) = &status.signed_set {
            println!("  signed rule set #{} ({})", set.sequence, set.digest);
        }
        if let Some(set) = &status.set_refused {
            println!("  REFUSED  the rule set: {}", set.reason);
        }
        println!("{} loaded, {} refused", generation.set.rules().len(), refused.len());
        let ok = refused.is_empty() && status.set_refused.is_none();
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
