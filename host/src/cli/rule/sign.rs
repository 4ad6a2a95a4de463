//! `weir rule sign`: a package signed (ed25519) for hosts that require
//! signed packages.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::packages;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The package manifest to sign (the signature covers it and its component).
    pub manifest: PathBuf,
    /// The secret key file written by `weir rule keygen`.
    #[arg(long, short)]
    pub key: PathBuf,
}

impl SignArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let (package, path) = packages::sign_package(&self.manifest, &self.key)?;
        println!("Signed {} {} ({}) → {}", package.spec.id, package.spec.version_label, package.hash, path.display());
        Ok(ExitCode::SUCCESS)
    }
}
