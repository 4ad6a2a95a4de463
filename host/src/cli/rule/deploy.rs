//! `weir rule deploy`: a package validated as a running weir would, then
//! installed into the rules directory atomically.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::config::Config;
use weir::packages::{self, Deployed};

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The package: its manifest (`target/weir/<id>.toml` after `weir rule
    /// build`), or a directory holding exactly one package.
    pub package: PathBuf,
    /// The rules directory a running weir watches (default: `rules.dir` of the config).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// Deploy with this mode instead of the manifest's: `shadow` to try a
    /// rule on live traffic, `enforce` to promote it.
    #[arg(long, value_parser = ["shadow", "enforce"])]
    pub mode: Option<String>,
    /// Configuration file (for the rules directory, compile cache and trusted keys).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl DeployArgs {
    /// Validates the package, then installs it (the running weir picks it up).
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let mut config = Config::load(self.config.as_deref())?;
        let dir = self.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
        // The compile cache is the directory's: a deploy compiles the package
        // into it, so the running weir swaps without compiling.
        config.rules.dir = dir.clone();
        let mode = self.mode.as_deref().map(str::parse).transpose()?;
        let (deployed, signature_dropped) = packages::deploy(&self.package, &dir, mode, &config.rules.validator()?)?;
        if signature_dropped {
            eprintln!(
                "note: the signature was made for the manifest as it was; with --mode the package needs signing again"
            );
        }
        match deployed {
            Deployed::Already { spec, hash } => {
                println!("{} {} ({hash}) is already deployed in {}", spec.id, spec.version_label, dir.display());
            }
            Deployed::Installed { spec, hash, manifest, replaced } => {
                let replacing =
                    replaced.map(|p| format!(", replacing {} ({})", p.spec.version_label, p.hash)).unwrap_or_default();
                println!(
                    "Deployed {} {} ({}, {hash}) to {}{replacing}.",
                    spec.id,
                    spec.version_label,
                    spec.mode,
                    manifest.display()
                );
                println!(
                    "A running weir watching {} swaps to it before its next record; `{}` undoes it.",
                    dir.display(),
                    super::rollback_command(&spec.id, &dir, self.config.as_deref())
                );
                super::seal_hint(&config, &dir);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
