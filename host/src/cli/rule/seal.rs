//! `weir rule seal`: the rules directory signed as a whole, for hosts with
//! `rules.require_signed = true`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::config::Config;
use weir::packages;

#[derive(Args, Debug)]
pub struct SealArgs {
    /// The rules directory to seal (default: `rules.dir` of the config).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// The secret key file written by `weir rule keygen`.
    #[arg(long, short)]
    pub key: PathBuf,
    /// The set expires at this RFC 3339 time (e.g. 2027-01-31T00:00:00Z):
    /// after it, a weir refuses the set until a new one is sealed.
    #[arg(long)]
    pub expires: Option<String>,
    /// The sequence number to use at least (default: the directory's
    /// current set's plus one).
    #[arg(long)]
    pub sequence: Option<u64>,
    /// Seal a directory without packages: a signed empty rule set, which
    /// stops every rule.
    #[arg(long)]
    pub empty: bool,
    /// Configuration file (trusted keys, compile cache).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl SealArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let mut config = Config::load(self.config.as_deref())?;
        let dir = self.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
        config.rules.dir = dir.clone();
        if let Some(expires) = &self.expires {
            packages::SetStatement::parse(&format!("sequence = 1\nexpires = {expires:?}\n"))?;
        }
        let validator = config.rules.validator()?;
        let sealed = packages::seal(&dir, &self.key, &validator, self.sequence, self.expires.clone(), self.empty)?;
        for rule in &sealed.statement.rules {
            println!("  sealed   {:<24} {}", rule.id, rule.version);
        }
        if !sealed.signed.is_empty() {
            println!("Signed the packages {}.", sealed.signed.join(", "));
        }
        let expires = sealed.statement.expires.as_deref().map(|e| format!(", expires {e}")).unwrap_or_default();
        println!(
            "Sealed {} as rule set #{} ({} rules{expires}) → {}.",
            dir.display(),
            sealed.statement.sequence,
            sealed.statement.rules.len(),
            sealed.path.display()
        );
        println!("A weir with `rules.require_signed` watching {} runs exactly these versions now.", dir.display());
        Ok(ExitCode::SUCCESS)
    }
}
