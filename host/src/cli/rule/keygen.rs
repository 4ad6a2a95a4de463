//! `weir rule keygen`: a signing key pair — the secret key to a file, the
//! public key printed for `rules.trusted_keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::packages;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the secret key (created with mode 0600).
    #[arg(long, short, default_value = "weir-signing.key")]
    pub out: PathBuf,
}

impl KeygenArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let public = packages::write_key_pair(&self.out)?;
        println!(
            "Secret key written to {} (keep it private; sign with `weir rule sign MANIFEST --key {}`).",
            self.out.display(),
            self.out.display()
        );
        println!("Public key, for `rules.trusted_keys`:\n  {public}");
        Ok(ExitCode::SUCCESS)
    }
}
