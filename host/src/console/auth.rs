//! Who is asking: the operator's users and roles, password logins checked
//! against argon2 hashes, server-side sessions, each session's CSRF token,
//! login throttling, and the trusted reverse-proxy header for single
//! sign-on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// What a user may do. Each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the queue, cases, lists and rules.
    Viewer,
    /// Also resolves cases, unlocks accounts and changes lists.
    Analyst,
    /// Also reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

/// One user as the operator configures it (`[[console.users]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The name analysts log in with, recorded in every event they write.
    pub name: String,
    pub role: Role,
    /// The argon2 hash of the password in PHC form (`weir console
    /// hash-password` makes one). Without it the user can only come in
    /// through the proxy header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Why a login failed. The message never says whether the user exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// The name or the password is wrong.
    Refused,
    /// Too many failures for this name or address; try again after this long.
    Throttled(Duration),
}

/// How sessions and logins are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub session_idle: Duration,
    pub session_max: Duration,
    /// Failed logins allowed per user name and per address in `login_window`.
    pub login_attempts: u32,
    pub login_window: Duration,
}

/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 10_000;
/// Names and addresses whose failures are remembered at most.
const MAX_THROTTLED: usize = 100_000;

pub struct Auth {
    users: HashMap<String, (Role, Option<String>)>,
    limits: Limits,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
    /// A hash checked for unknown users, so a wrong name costs what a wrong
    /// password does.
    dummy_hash: String,
    /// Keys the CSRF tokens of proxy-header users (no session of ours).
    proxy_secret: [u8; 32],
}

/// The users of a configuration refused: the field and the problem.
#[derive(Debug, thiserror::Error)]
#[error("console.users: {0}")]
pub struct UsersError(pub String);

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

/// The PHC hash of `password` (argon2id, a fresh salt).
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes encode");
    argon2::Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with defaults").to_string()
}

impl Auth {
    pub fn new(users: &[UserConfig], proxy: bool, limits: Limits) -> Result<Auth, UsersError> {
        let mut map = HashMap::new();
        for u in users {
            if u.name.is_empty() || u.name.len() > 128 || u.name.chars().any(char::is_control) {
                return Err(UsersError(format!("user name {:?} must be 1 to 128 characters, none a control", u.name)));
            }
            if let Some(hash) = &u.password_hash
                && let Err(e) = PasswordHash::new(hash)
            {
                return Err(UsersError(format!("user `{}`: password_hash is not a PHC string ({e})", u.name)));
            }
            if u.password_hash.is_none() && !proxy {
                return Err(UsersError(format!(
                    "user `{}` has no password_hash and there is no proxy_user_header: it could never log in",
                    u.name
                )));
            }
            if map.insert(u.name.clone(), (u.role, u.password_hash.clone())).is_some() {
                return Err(UsersError(format!("user `{}` is configured twice", u.name)));
            }
        }
        let mut proxy_secret = [0u8; 32];
        getrandom::fill(&mut proxy_secret).expect("the operating system's random source");
        Ok(Auth {
            users: map,
            limits,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            dummy_hash: hash_password(&random_hex(16)),
            proxy_secret,
        })
    }

    /// Checks a login; blocking (argon2 takes tens of milliseconds), so run
    /// it off the async threads. On success the new session's token.
    pub fn login(&self, name: &str, password: &str, from: IpAddr) -> Result<(String, Session), LoginError> {
        let keys = [format!("user:{name}"), format!("addr:{from}")];
        if let Some(wait) = self.throttled(&keys) {
            return Err(LoginError::Throttled(wait));
        }
        let known = self.users.get(name);
        let hash = known.and_then(|(_, h)| h.as_deref()).unwrap_or(&self.dummy_hash);
        let ok = PasswordHash::new(hash)
            .map(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        match known {
            Some((role, Some(_))) if ok => {
                let token = random_hex(32);
                let now = Instant::now();
                let session =
                    Session { user: name.to_owned(), role: *role, csrf: random_hex(32), created: now, last_seen: now };
                let mut sessions = self.sessions.lock().expect("sessions");
                if sessions.len() >= MAX_SESSIONS
                    && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone())
                {
                    sessions.remove(&oldest);
                }
                sessions.insert(token.clone(), session.clone());
                Ok((token, session))
            }
            _ => {
                self.fail(&keys);
                Err(LoginError::Refused)
            }
        }
    }

    fn throttled(&self, keys: &[String]) -> Option<Duration> {
        let failures = self.failures.lock().expect("failures");
        let now = Instant::now();
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter_map(|times| {
                let recent: Vec<&Instant> =
                    times.iter().filter(|t| now.duration_since(**t) < self.limits.login_window).collect();
                (recent.len() >= self.limits.login_attempts as usize)
                    .then(|| self.limits.login_window.saturating_sub(now.duration_since(*recent[0])))
            })
            .max()
    }

    fn fail(&self, keys: &[String]) {
        let mut failures = self.failures.lock().expect("failures");
        let now = Instant::now();
        if failures.len() >= MAX_THROTTLED {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.limits.login_window));
        }
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            times.retain(|t| now.duration_since(*t) < self.limits.login_window);
            times.push(now);
        }
    }

    /// The live session `token` names, if any; it counts as activity.
    pub fn session(&self, token: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().expect("sessions");
        let now = Instant::now();
        let session = sessions.get_mut(token)?;
        if now.duration_since(session.last_seen) > self.limits.session_idle
            || now.duration_since(session.created) > self.limits.session_max
        {
            sessions.remove(token);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    pub fn logout(&self, token: &str) {
        self.sessions.lock().expect("sessions").remove(token);
    }

    /// A user the trusted proxy vouches for: a configured name gets its
    /// role; anyone else nothing.
    pub fn proxied(&self, name: &str) -> Option<Session> {
        let (role, _) = self.users.get(name)?;
        let mac = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(self.proxy_secret);
            h.update(name.as_bytes());
            hex::encode(h.finalize())
        };
        let now = Instant::now();
        Some(Session { user: name.to_owned(), role: *role, csrf: mac, created: now, last_seen: now })
    }
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            session_idle: Duration::from_secs(60),
            session_max: Duration::from_secs(600),
            login_attempts: 3,
            login_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_password_logs_in_and_repeated_failures_are_throttled() {
        let users = [UserConfig {
            name: "analyst-7".into(),
            role: Role::Analyst,
            password_hash: Some(hash_password("s3cret pass")),
        }];
        let auth = Auth::new(&users, false, limits()).unwrap();
        let from: IpAddr = "127.0.0.1".parse().unwrap();
        let (token, session) = auth.login("analyst-7", "s3cret pass", from).unwrap();
        assert_eq!((session.user.as_str(), session.role), ("analyst-7", Role::Analyst));
        assert_eq!(auth.session(&token).unwrap().csrf, session.csrf);
        assert_eq!(auth.login("analyst-7", "wrong", from).unwrap_err(), LoginError::Refused);
        assert_eq!(auth.login("nobody", "s3cret pass", from).unwrap_err(), LoginError::Refused);
        assert_eq!(auth.login("analyst-7", "wrong", from).unwrap_err(), LoginError::Refused);
        // Three failures from this address: even the right password waits.
        assert!(matches!(auth.login("analyst-7", "s3cret pass", from), Err(LoginError::Throttled(_))));
        auth.logout(&token);
        assert!(auth.session(&token).is_none());
    }

    #[test]
    fn bad_user_configurations_are_refused_naming_the_user() {
        let no_hash = [UserConfig { name: "viewer-9".into(), role: Role::Viewer, password_hash: None }];
        let e = Auth::new(&no_hash, false, limits()).err().unwrap().to_string();
        assert!(e.contains("`viewer-9` has no password_hash"), "{e}");
        assert!(Auth::new(&no_hash, true, limits()).is_ok());
        let bad = [UserConfig { name: "admin-9".into(), role: Role::Admin, password_hash: Some("plain".into()) }];
        let e = Auth::new(&bad, false, limits()).err().unwrap().to_string();
        assert!(e.contains("`admin-9`: password_hash is not a PHC string"), "{e}");
    }
}
