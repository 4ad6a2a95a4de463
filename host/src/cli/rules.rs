//! `weir rules`: which packages in a rules directory load, and which a
//! running weir would refuse, and why.

use std::path::PathBuf;
use std::process::ExitCode;

use super::print::print_params;
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
    /// Show each loaded rule's parameters: the value it runs with, where
    /// the value came from (`rule.toml`, the rule's declared `default`, or
    /// `unset`), and the declared type and doc.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub params: bool,
}

impl RulesArgs {
    /// Lists the loaded and refused packages; fails if any is refused.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let mut config = Config::load(self.config.as_deref())?;
        config.rules.dir = self.dir.clone();
        // The same loader as a running weir's: what it would run, what it would refuse.
        let mut validator = config.rules.validator()?;
        if let Some(kafka) = &config.kafka {
            validator = validator.only_entity_kinds(kafka.entity_kinds());
        }
        let live = LiveRules::load(&self.dir, validator)?;
        let generation = live.current();
        let rules = generation.set.rules();
        // Columns as wide as the longest id and version, so long ids line up.
        let id_width = rules.iter().map(|r| r.spec.id.len()).max().unwrap_or(0).max(16);
        let version_width = rules.iter().map(|r| r.spec.version_label.len()).max().unwrap_or(0).max(8);
        for r in rules {
            // Whose state the rule keeps: the account's, or an entity's.
            let per = r.spec.entity.map_or("account", |e| e.name());
            println!(
                "  loaded   {:<id_width$} {:<version_width$} {:<8} {:<12} {}",
                r.spec.id,
                r.spec.version_label,
                r.spec.mode.to_string(),
                per,
                r.hash
            );
            if self.params {
                print_params(&r.parameters);
            }
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
