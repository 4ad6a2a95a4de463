//! `weir rule build`: a rule crate compiled for wasm and laid out as a
//! package in `target/weir/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::scaffold;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The rule crate.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

impl BuildArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let package = scaffold::build_rule(&self.dir)?;
        println!("Built the rule package {}", package.display());
        Ok(ExitCode::SUCCESS)
    }
}
