//! `weir rule new`: a rule crate that builds and passes its tests as is,
//! and the next steps.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::scaffold;

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The rule's name and id: lowercase letters, digits and dashes.
    pub name: String,
    /// The directory to create the rule crate in.
    #[arg(long, default_value = ".")]
    pub path: PathBuf,
    /// Depend on the weir SDK at this path instead of a copy inside the
    /// crate (for work on the SDK itself). By default the crate gets its own
    /// copy (`weir-sdk/`) of the SDK this weir was built with, so it builds
    /// anywhere, without weir's source tree.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
    /// Make a rule that scores a machine-learning model: it computes four
    /// features, scores the ONNX model it comes with (`NAME.onnx`, a
    /// starter to replace with your own) and explains what it flags.
    #[arg(long)]
    pub model: bool,
}

impl NewArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let kind = if self.model { scaffold::Kind::Model } else { scaffold::Kind::Rule };
        let dir = scaffold::new_rule_of(&self.path, &self.name, self.sdk.as_deref(), kind)?;
        println!("Created the rule crate {}", dir.display());
        if self.sdk.is_none() {
            println!("  with its own copy of the weir SDK {} in {}/", env!("CARGO_PKG_VERSION"), scaffold::SDK_DIR);
        }
        if self.model {
            println!(
                "\nThe rule it holds is a working example: it computes four features (amount, hour, transactions\n\
                 in the hour before, new merchant), scores them with {0}.onnx and suspects what scores at or\n\
                 above `threshold` (0.8), reason MODEL_SCORE, naming the features that moved the score. The\n\
                 model is a starter trained on synthetic data: train yours on the features `features()`\n\
                 computes, export it to ONNX and replace {0}.onnx (the rule's code is not recompiled).",
                self.name
            );
        } else {
            println!(
                "\nThe rule it holds is a working example: it suspects purchases above `limit` (50 000 minor units)\n\
                 made at night (00:00–06:00 UTC), reason NIGHT_SPEND. Its parameters are declared in src/lib.rs\n\
                 (`PARAMS`) and set in rule.toml; make it yours by editing both."
            );
        }
        println!("\nNext:");
        println!("  cd {}", dir.display());
        println!("  cargo test                      # the rule's unit tests, natively");
        let model = if self.model { format!(" + {}.onnx", self.name) } else { String::new() };
        println!(
            "  weir rule build                 # → target/weir/{0}.toml + {0}.wasm + {0}.cases.toml{model}",
            self.name
        );
        println!("  weir rule test target/weir/{}.wasm cases.toml   # the cases, in the sandbox", self.name);
        println!("  weir rule deploy target/weir --rules RULES_DIR --mode shadow   # live, without a restart");
        Ok(ExitCode::SUCCESS)
    }
}
