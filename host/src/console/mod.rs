//! The analysts' console, `weir console`: the review queue, case pages with
//! their actions (confirm fraud, mark legitimate, unlock, add an entity to
//! a list), the lists and the audit log, in the browser.
//!
//! It sits beside the pipelines, not in them: it reads what weir published
//! (the cases, [`store`]; the lists, [`crate::lists`]) and writes the same
//! events `weir case` and `weir list` write ([`actions`]), which weir then
//! applies in order with the transactions. Every action is also written to
//! the audit log (on Kafka, `kafka.topics.audit`).
//!
//! - [`auth`]: users and roles, sessions, CSRF tokens, login throttling,
//!   the trusted proxy header.
//! - [`store`]: the cases, folded by a thread of their own into snapshots.
//! - [`actions`]: where events and audit records are written.
//! - `pages`: the routes and their templates (`host/templates/console`,
//!   compiled in by askama, which escapes every value it prints); the
//!   stylesheet is embedded too, and nothing is fetched from elsewhere.

pub mod actions;
pub mod auth;
mod pages;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kafka::KafkaConfig;
use crate::lists::LiveLists;

pub use auth::{Role, UserConfig, hash_password};

/// `[console]`: the console's listener, users and sessions; embedded, the
/// run's files it reads and writes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Where the console listens.
    pub listen: String,
    /// The users and their roles (`viewer`, `analyst`, `admin`).
    pub users: Vec<UserConfig>,
    /// Single sign-on: a reverse proxy that authenticates users puts the
    /// user's name in this header, and the console trusts it (the user must
    /// be configured, for its role). Only for a console that nothing but the
    /// proxy can reach. Unset: password logins.
    pub proxy_user_header: Option<String>,
    /// Session cookies are `Secure` and `__Host-` prefixed (browsers keep
    /// them over https, and over http on localhost). Off only for a test
    /// over plain http on another host.
    pub secure_cookie: bool,
    /// A session ends after this long without a request, and after
    /// `session_max_secs` in any case.
    pub session_idle_secs: u64,
    pub session_max_secs: u64,
    /// Failed logins allowed per user name and per address within
    /// `login_window_secs`; after that, logins wait.
    pub login_attempts: u32,
    pub login_window_secs: u64,
    /// How often the cases are read again (and after every action).
    pub refresh_ms: u64,
    /// Cases per page of the queue.
    pub page_size: usize,
    /// Embedded: the decisions weir writes (decisions.jsonl).
    pub decisions: Option<PathBuf>,
    /// Embedded: where verdicts are appended (and read).
    pub dispositions: Option<PathBuf>,
    /// Embedded: weir's input, where unlocks are appended (and
    /// confirmations read).
    pub input: Option<PathBuf>,
    /// Embedded: the audit log (JSON lines). On Kafka, `kafka.topics.audit`.
    pub audit_file: Option<PathBuf>,
    /// The running instances' status endpoints (`host:port`, their
    /// `status.listen`), whose rules, hits, errors, quarantines and deploys
    /// the rules page shows.
    pub instances: Vec<String>,
    /// The bearer token of the status endpoints (`status.token_file`).
    pub status_token_file: Option<PathBuf>,
    /// A directory of backtest and shadow reports (`weir backtest --html`,
    /// `--json`): the rules page links to its `.html` and `.json` files.
    pub reports_dir: Option<PathBuf>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: "127.0.0.1:9190".to_owned(),
            users: Vec::new(),
            proxy_user_header: None,
            secure_cookie: true,
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 3600,
            login_attempts: 5,
            login_window_secs: 15 * 60,
            refresh_ms: 2_000,
            page_size: 50,
            decisions: None,
            dispositions: None,
            input: None,
            audit_file: None,
            instances: Vec::new(),
            status_token_file: None,
            reports_dir: None,
        }
    }
}

/// The console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Users(#[from] auth::UsersError),
    #[error("console: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot read the lists: {0}")]
    Lists(String),
}

/// What the pages share.
pub(crate) struct App {
    auth: auth::Auth,
    store: Arc<store::CaseStore>,
    lists: Arc<LiveLists>,
    list_limits: crate::lists::ListLimits,
    sink: actions::Sink,
    console: ConsoleConfig,
    kafka: Option<crate::kafka::KafkaConfig>,
    /// The status endpoints' bearer token, read at start.
    status_token: Option<String>,
}

/// A running console: where it listens; dropping it stops it.
pub struct Console {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the console `c` describes, over Kafka with `kafka` (otherwise
/// the embedded files), the lists bounded by `lists`: checks the users,
/// reads the cases and the lists once, binds the listener, and serves on a
/// thread of its own.
pub fn start(
    c: &ConsoleConfig,
    lists_config: &crate::lists::ListsConfig,
    kafka: Option<&KafkaConfig>,
) -> Result<Console, ConsoleError> {
    let proxy = c.proxy_user_header.as_deref().is_some_and(|h| !h.is_empty());
    if c.users.is_empty() {
        return Err(ConsoleError::Config(
            "no users: add [[console.users]] with a name, a role and a password_hash (`weir console hash-password`)"
                .into(),
        ));
    }
    if c.page_size == 0 || c.page_size > 1000 {
        return Err(ConsoleError::Config("page_size must be 1 to 1000".into()));
    }
    let limits = auth::Limits {
        session_idle: Duration::from_secs(c.session_idle_secs.max(1)),
        session_max: Duration::from_secs(c.session_max_secs.max(1)),
        login_attempts: c.login_attempts.max(1),
        login_window: Duration::from_secs(c.login_window_secs.max(1)),
    };
    let auth = auth::Auth::new(&c.users, proxy, limits)?;
    let status_token = match &c.status_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| ConsoleError::Config(format!("status_token_file {}: {e}", path.display())))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let list_limits = lists_config.limits();
    let (sink, files, lists) = match kafka {
        Some(kafka) => {
            if kafka.create_topics {
                crate::kafka::create_topics(kafka, &stop)
                    .map_err(|e| ConsoleError::Config(format!("cannot create weir's topics: {e}")))?;
            }
            let lists = LiveLists::new(format!("kafka:{}", kafka.topics.lists), list_limits.clone());
            crate::kafka::lists::start(kafka, lists.clone(), &stop).map_err(|e| ConsoleError::Lists(e.to_string()))?;
            let publisher = crate::kafka::Publisher::new(kafka)
                .map_err(|e| ConsoleError::Config(format!("cannot make a Kafka producer: {e}")))?;
            (actions::Sink::Kafka(Box::new(kafka.clone()), publisher), crate::review::Files::default(), lists)
        }
        None => {
            let Some(decisions) = c.decisions.clone() else {
                return Err(ConsoleError::Config(
                    "give console.decisions (the embedded run's decisions file), or a [kafka] table".into(),
                ));
            };
            let lists = match &lists_config.file {
                Some(path) => crate::lists::follow_file(path.clone(), list_limits.clone(), true)
                    .map_err(|e| ConsoleError::Lists(format!("{}: {e}", path.display())))?,
                None => LiveLists::new("none", list_limits.clone()),
            };
            let sink = actions::Sink::Files {
                dispositions: c.dispositions.clone(),
                input: c.input.clone(),
                lists: lists_config.file.clone(),
                audit: c.audit_file.clone(),
            };
            let files = crate::review::Files {
                decisions: Some(decisions),
                dispositions: c.dispositions.clone(),
                input: c.input.clone(),
            };
            (sink, files, lists)
        }
    };
    let store =
        store::CaseStore::start(kafka.cloned(), files, Duration::from_millis(c.refresh_ms.max(100)), stop.clone());
    let listener = std::net::TcpListener::bind(&c.listen)
        .map_err(|source| ConsoleError::Listen { addr: c.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| ConsoleError::Listen { addr: c.listen.clone(), source })?;
    listener.set_nonblocking(true).map_err(|source| ConsoleError::Listen { addr: c.listen.clone(), source })?;
    let app = Arc::new(App {
        auth,
        store,
        lists,
        list_limits,
        sink,
        console: c.clone(),
        kafka: kafka.cloned(),
        status_token,
    });
    let router = pages::router(app);
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("weir-console".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("weir-console-http")
                .enable_all()
                .build()
                .expect("the console's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a bound listener");
                let shutdown = async move {
                    while !stopping.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(shutdown).await {
                    tracing::error!(error = %e, "the console stopped serving");
                }
            });
        })
        .expect("spawning the console's thread");
    tracing::info!(%addr, "console listening");
    Ok(Console { addr, stop, thread: Some(thread) })
}
