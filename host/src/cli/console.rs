//! `weir console ...`: serve the analysts' console ([`weir::console`]), and
//! make the password hashes its configuration holds.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use weir::config::Config;

#[derive(Subcommand)]
pub enum ConsoleCommand {
    /// Serve the console until interrupted.
    ///
    /// Checks the users, reads the cases and the lists once, then listens
    /// on `console.listen` (or --listen). Open it in a browser and log in
    /// as one of `[[console.users]]`.
    Serve(ServeArgs),
    /// Print the argon2 hash of a password read from stdin, for a user's `password_hash`.
    ///
    /// `printf '%s' 'the password' | weir console hash-password` prints a
    /// PHC string (`$argon2id$v=19$...`) with a fresh salt; the password is
    /// the first line of stdin, without its line break.
    HashPassword,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML) with a `[console]` table and its users.
    /// WEIR_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Where to listen (overrides console.listen), e.g. 127.0.0.1:9190.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

impl ConsoleCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ConsoleCommand::Serve(args) => {
                let mut config = Config::load(args.config.as_deref())?;
                if let Some(listen) = args.listen {
                    config.console.listen = listen;
                }
                let console = weir::console::start(&config.console, &config.lists, config.kafka.as_ref())
                    .context("the console did not start")?;
                eprintln!("weir console: http://{}/ (Ctrl-C stops it)", console.addr);
                console.wait();
                Ok(ExitCode::SUCCESS)
            }
            ConsoleCommand::HashPassword => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
                let password = line.strip_suffix('\n').unwrap_or(&line);
                let password = password.strip_suffix('\r').unwrap_or(password);
                anyhow::ensure!(!password.is_empty(), "no password on stdin");
                println!("{}", weir::console::hash_password(password));
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
