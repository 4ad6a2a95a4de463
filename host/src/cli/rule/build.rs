//! `weir rule build`: a rule crate compiled for wasm and laid out as a
//! package in `target/weir/`, its parameters checked against what the
//! rule declares.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::engine::{Parameters, declaration};
use weir::manifest::RuleSpec;
use weir::scaffold;

use crate::cli::print::print_params;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The rule crate.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

impl BuildArgs {
    /// Builds, then checks the manifest's `[params]` against the parameters
    /// the rule declares: a package a deploy would refuse fails the build.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let package = scaffold::build_rule(&self.dir)?;
        let text = std::fs::read_to_string(&package)?;
        let spec = RuleSpec::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", package.display()))?;
        let component_path = package.with_file_name(&spec.component);
        let component = std::fs::read(&component_path)?;
        let parameters = declaration(&component).and_then(|declared| Parameters::resolve(declared, &spec.params));
        match parameters {
            Ok(parameters) => {
                println!("Built the rule package {}", package.display());
                print_params(&parameters);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("Refused: {}: {e}", self.dir.join("rule.toml").display());
                eprintln!(
                    "The package in {} would be refused at deploy; fix `[params]` and build again.",
                    package.display()
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
