//! The console's routes: each checks who is asking and what their role
//! allows, every form post checks its session's CSRF token and the
//! request's origin, and every page is an askama template (escaped).
//!
//! | route | role | |
//! | --- | --- | --- |
//! | `GET /login`, `POST /login` | anyone | log in (throttled) |
//! | `POST /logout` | viewer | |
//! | `GET /` | viewer | the queue: filter, sort, pages |
//! | `GET /cases/{id}` | viewer | a case: decisions, rules, timeline |
//! | `POST /cases/{id}/resolve` | analyst | confirm fraud / mark legitimate |
//! | `POST /cases/{id}/unlock` | analyst | lift the case's lock |
//! | `POST /cases/{id}/list` | analyst | add an entity to a list |
//! | `GET /lists` | viewer | the lists and their entries |
//! | `POST /lists/add`, `POST /lists/remove` | analyst | change a list |
//! | `GET /rules` | viewer | the instances' rules, hits, errors, deploys |
//! | `GET /reports/{name}` | viewer | a backtest or shadow report |
//! | `GET /audit` | admin | the audit log |
//! | `GET /assets/console.css` | anyone | the stylesheet |

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::App;
use super::actions::{AuditRecord, Kind};
use super::auth::{LoginError, Role, Session, same_token};
use crate::events::{AccountUnlocked, CaseResolved, DecisionType, ListAction, ListChanged, Verdict};
use crate::review::{Case, CaseDecision, CaseState, amount_text};

const CSS: &str = include_str!("console.css");
/// Entries of one list a page shows at most.
const MAX_ENTRIES_SHOWN: usize = 500;
/// Audit records the audit page shows at most.
const MAX_AUDIT_SHOWN: usize = 200;

pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(queue))
        .route("/cases/{id}", get(case_page))
        .route("/cases/{id}/resolve", post(resolve))
        .route("/cases/{id}/unlock", post(unlock))
        .route("/cases/{id}/list", post(case_list_add))
        .route("/lists", get(lists_page))
        .route("/lists/add", post(list_add))
        .route("/lists/remove", post(list_remove))
        .route("/rules", get(rules_page))
        .route("/reports/{name}", get(report))
        .route("/audit", get(audit_page))
        .route("/assets/console.css", get(css))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

/// Every answer: no script, no framing, nothing fetched from elsewhere, not cached.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS).into_response()
}

/// The signed-in user as the pages show them.
struct Me {
    user: String,
    role: &'static str,
    csrf: String,
    admin: bool,
    can_act: bool,
    waiting: usize,
    store_error: Option<String>,
    flash: Option<String>,
}

impl App {
    fn cookie_name(&self) -> &'static str {
        if self.console.secure_cookie { "__Host-weir-console" } else { "weir-console" }
    }

    fn session_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Who is asking: the proxy's user, or the session's; `None` if nobody.
    fn who(&self, headers: &HeaderMap) -> Option<Session> {
        if let Some(h) = self.console.proxy_user_header.as_deref().filter(|h| !h.is_empty()) {
            let name = headers.get(h)?.to_str().ok()?;
            return self.auth.proxied(name);
        }
        self.auth.session(self.session_token(headers)?)
    }

    fn me(&self, s: &Session, flash: Option<String>) -> Me {
        Me {
            user: s.user.clone(),
            role: s.role.as_str(),
            csrf: s.csrf.clone(),
            admin: s.role >= Role::Admin,
            can_act: s.role >= Role::Analyst,
            waiting: self.store.snapshot().waiting,
            store_error: self.store.error(),
            flash,
        }
    }

    /// A page's reader: signed in with at least `role`, or the answer.
    fn reader(&self, headers: &HeaderMap, role: Role) -> Result<Session, Box<Response>> {
        match self.who(headers) {
            None => Err(Box::new(Redirect::to("/login").into_response())),
            Some(s) if s.role < role => Err(Box::new(self.problem(
                &s,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your role may not see this page.",
            ))),
            Some(s) => Ok(s),
        }
    }

    /// An action's author: signed in with at least `role`, the form's
    /// CSRF token that of the session, and the request from this origin.
    fn actor(&self, headers: &HeaderMap, role: Role, csrf: &str) -> Result<Session, Box<Response>> {
        let Some(s) = self.who(headers) else {
            return Err(Box::new((StatusCode::UNAUTHORIZED, "log in first").into_response()));
        };
        if !same_origin(headers) {
            return Err(Box::new(self.problem(
                &s,
                StatusCode::FORBIDDEN,
                "Refused",
                "The request came from another site.",
            )));
        }
        if !same_token(csrf, &s.csrf) {
            return Err(Box::new(self.problem(
                &s,
                StatusCode::FORBIDDEN,
                "Refused",
                "The form's CSRF token is missing or wrong: reload the page and try again.",
            )));
        }
        if s.role < role {
            return Err(Box::new(self.problem(&s, StatusCode::FORBIDDEN, "Not allowed", "Your role may not do this.")));
        }
        Ok(s)
    }

    fn problem(&self, s: &Session, status: StatusCode, title: &str, message: &str) -> Response {
        let page = ErrorPage { nav: "", me: self.me(s, None), title, message };
        (status, render(&page)).into_response()
    }

    /// Writes `audit` (with `outcome`), logging a failure: the action itself stands.
    async fn audit(self: &Arc<Self>, mut audit: AuditRecord) -> Option<String> {
        let app = self.clone();
        let line = serde_json::to_string(&audit).expect("an audit record serializes");
        let key = std::mem::take(&mut audit.user);
        let written = tokio::task::spawn_blocking(move || app.sink.write(Kind::Audit, &key, &line)).await;
        match written {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::error!(error = %e, action = audit.action, "the console's audit record was not written");
                Some(format!(" The audit record was not written: {e}."))
            }
            Err(e) => Some(format!(" The audit record was not written: {e}.")),
        }
    }
}

/// A form post's `Origin` (or, without one, `Referer`) names this host, if
/// it names any.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|h| h.to_str().ok());
    match from {
        None => true,
        Some(o) => {
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")).unwrap_or("");
            rest.split('/').next() == Some(host)
        }
    }
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

fn address(addr: SocketAddr) -> String {
    addr.ip().to_string()
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    nav: &'a str,
    me: Me,
    title: &'a str,
    message: &'a str,
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
    user: &'a str,
    /// Users come through the single sign-on proxy: no password form.
    proxy: bool,
}

impl App {
    fn proxied(&self) -> bool {
        self.console.proxy_user_header.as_deref().is_some_and(|h| !h.is_empty())
    }
}

async fn login_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.who(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    render(&LoginPage { error: None, user: "", proxy: app.proxied() })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "the request came from another site").into_response();
    }
    if app.proxied() {
        return (StatusCode::BAD_REQUEST, "this console signs users in through the single sign-on proxy")
            .into_response();
    }
    if form.user.len() > 128 || form.password.len() > 1024 {
        return (StatusCode::BAD_REQUEST, "the name or the password is too long").into_response();
    }
    let a = app.clone();
    let (user, password) = (form.user.clone(), form.password);
    let result = tokio::task::spawn_blocking(move || a.auth.login(&user, &password, from.ip()))
        .await
        .unwrap_or(Err(LoginError::Refused));
    match result {
        Ok((token, session)) => {
            let audit =
                AuditRecord::new(&session.user, session.role.as_str(), address(from), "login", session.user.clone());
            app.audit(audit).await;
            let secure = if app.console.secure_cookie { "; Secure" } else { "" };
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                app.cookie_name(),
                app.console.session_max_secs
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => {
            let (status, message) = match &e {
                LoginError::Refused => (StatusCode::UNAUTHORIZED, "The name or the password is wrong.".to_owned()),
                LoginError::Throttled(wait) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many failed logins: try again in {} s.", wait.as_secs().max(1)),
                ),
            };
            // A refused password is audited; a throttled attempt is not even
            // checked, and not audited either, so guessing cannot fill the log.
            if e == LoginError::Refused {
                let mut audit = AuditRecord::new(&form.user, "none", address(from), "login-refused", form.user.clone());
                audit.outcome = "refused";
                audit.detail = Some(message.clone());
                app.audit(audit).await;
            }
            (status, render(&LoginPage { error: Some(&message), user: &form.user, proxy: false })).into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match app.actor(&headers, Role::Viewer, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(token) = app.session_token(&headers) {
        app.auth.logout(token);
    }
    app.audit(AuditRecord::new(&s.user, s.role.as_str(), address(from), "logout", s.user.clone())).await;
    let secure = if app.console.secure_cookie { "; Secure" } else { "" };
    let cookie = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", app.cookie_name());
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

// ---------------------------------------------------------------- queue

#[derive(Deserialize, Default)]
#[serde(default)]
struct QueueQuery {
    state: String,
    rule: String,
    min_score: String,
    min_amount: String,
    account: String,
    sort: String,
    page: usize,
    done: String,
}

struct QueueRow {
    case_id: String,
    short_id: String,
    account: String,
    state: &'static str,
    locked: bool,
    opened_at: String,
    age: String,
    score: u32,
    amount: String,
    rules: String,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage<'a> {
    nav: &'a str,
    me: Me,
    q: &'a QueueQuery,
    states: Vec<(&'static str, bool)>,
    rules: Vec<(String, bool)>,
    sorts: Vec<(&'static str, bool)>,
    rows: Vec<QueueRow>,
    matching: usize,
    folded: Option<String>,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

const STATES: [&str; 4] = ["open", "fraud", "legitimate", "all"];
const SORTS: [&str; 6] = ["score", "newest", "oldest", "amount", "account", "decisions"];

/// A case's flagged amount in its first decision's currency (in minor
/// units), and that currency; decisions in other currencies are left out.
fn case_amount(c: &Case) -> (i64, &str) {
    let currency = c.decisions.first().map_or("", |d| d.amount.currency.as_str());
    let total = c
        .decisions
        .iter()
        .filter(|d| d.amount.currency == currency)
        .fold(0i64, |sum, d| sum.saturating_add(d.amount.minor_units));
    (total, currency)
}

/// An amount the analyst typed, in major units (`250`, `99.5`), as minor
/// units of two digits; `None` if it is not a number.
fn parse_amount(text: &str) -> Option<i64> {
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if frac.len() > 2 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
    whole.checked_mul(100)?.checked_add(frac)
}

fn age_text(opened_at: &str, now: OffsetDateTime) -> String {
    let Ok(t) = OffsetDateTime::parse(opened_at, &Rfc3339) else {
        return String::new();
    };
    let secs = (now - t).whole_seconds();
    match secs {
        s if s < 0 => "in the future".to_owned(),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86400),
    }
}

fn flash_text(done: &str) -> Option<String> {
    Some(
        match done {
            "resolved" => "Verdict written. The case shows it once the cases are read again (a few seconds).",
            "unlocked" => {
                "Unlock written to weir's input: weir lifts the lock in order with the account's transactions."
            }
            "listed" => "List change written: every weir instance applies it within a second.",
            "unlisted" => "Entry removal written: every weir instance applies it within a second.",
            _ => return None,
        }
        .to_owned(),
    )
}

async fn queue(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<QueueQuery>) -> Response {
    let s = match app.reader(&headers, Role::Viewer) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let snapshot = app.store.snapshot();
    let state = if STATES.contains(&q.state.as_str()) { q.state.as_str() } else { "open" };
    let sort = if SORTS.contains(&q.sort.as_str()) { q.sort.as_str() } else { "score" };
    let min_score: u32 = q.min_score.trim().parse().unwrap_or(0);
    let min_amount = parse_amount(&q.min_amount).unwrap_or(0);
    let mut matching: Vec<&Case> = snapshot
        .cases
        .iter()
        .map(|c| &**c)
        .filter(|c| state == "all" || c.state.as_str() == state)
        .filter(|c| c.max_score >= min_score)
        .filter(|c| q.account.is_empty() || c.account_id == q.account)
        .filter(|c| q.rule.is_empty() || c.decisions.iter().any(|d| d.rules.iter().any(|r| *r.rule_id == *q.rule)))
        .filter(|c| min_amount == 0 || case_amount(c).0 >= min_amount)
        .collect();
    match sort {
        "newest" => matching.sort_by(|a, b| b.opened_at.cmp(&a.opened_at)),
        "oldest" => matching.sort_by(|a, b| a.opened_at.cmp(&b.opened_at)),
        "amount" => matching.sort_by_key(|c| std::cmp::Reverse(case_amount(c).0)),
        "account" => matching.sort_by(|a, b| a.account_id.cmp(&b.account_id)),
        "decisions" => matching.sort_by_key(|c| std::cmp::Reverse(c.decisions.len())),
        _ => matching.sort_by(|a, b| b.max_score.cmp(&a.max_score).then_with(|| a.opened_at.cmp(&b.opened_at))),
    }
    let size = app.console.page_size;
    let pages = matching.len().div_ceil(size).max(1);
    let page = q.page.clamp(1, pages);
    let now = OffsetDateTime::now_utc();
    let rows = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|c| {
            let (amount, currency) = case_amount(c);
            let mut rules: Vec<String> = c.decisions.iter().flat_map(|d| d.fired.iter().cloned()).collect::<Vec<_>>();
            rules.dedup();
            QueueRow {
                case_id: c.case_id.clone(),
                short_id: c.case_id[..8.min(c.case_id.len())].to_owned(),
                account: c.account_id.clone(),
                state: c.state.as_str(),
                locked: c.locked,
                opened_at: c.opened_at.clone(),
                age: age_text(&c.opened_at, now),
                score: c.max_score,
                amount: amount_text(amount, currency),
                rules: rules.join(", "),
            }
        })
        .collect();
    let link = |p: usize| {
        let mut url = url_query(&[
            ("state", state),
            ("rule", &q.rule),
            ("min_score", &q.min_score),
            ("min_amount", &q.min_amount),
            ("account", &q.account),
            ("sort", sort),
        ]);
        url.push_str(&format!("&page={p}"));
        url
    };
    let page_view = QueuePage {
        nav: "queue",
        me: app.me(&s, flash_text(&q.done)),
        q: &q,
        states: STATES.iter().map(|x| (*x, *x == state)).collect(),
        rules: snapshot.rules.iter().map(|r| (r.clone(), *r == q.rule)).collect(),
        sorts: SORTS.iter().map(|x| (*x, *x == sort)).collect(),
        rows,
        matching: matching.len(),
        folded: snapshot
            .folded_at
            .map(|t| format!("{} s ago in {} ms", (now - t).whole_seconds().max(0), snapshot.took.as_millis())),
        page,
        pages,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    };
    render(&page_view)
}

/// `/?k=v&…`, the values percent-encoded.
fn url_query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("/?");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- case

struct RuleView {
    rule_id: String,
    version: String,
    mode: &'static str,
    outcome: &'static str,
    score: u32,
    reason_code: String,
    message: String,
    evidence: Vec<(String, String)>,
    lists: String,
}

struct DecisionView {
    event_type: &'static str,
    transaction_id: String,
    occurred_at: String,
    amount: String,
    merchant: String,
    score: u32,
    reason: String,
    rules: Vec<RuleView>,
}

struct CaseView {
    case_id: String,
    short_id: String,
    account: String,
    state: &'static str,
    locked: bool,
    opened_at: String,
    score: u32,
    amount: String,
    decisions: Vec<DecisionView>,
    /// (verdict, analyst, at, note)
    resolution: Option<(&'static str, String, String, String)>,
    /// The transactions of the case's AccountLocked decisions, not yet unlocked.
    locks: Vec<String>,
    /// Values an analyst may want on a list: the account, the merchants.
    entities: Vec<String>,
}

struct TimelineRow {
    at: String,
    kind: &'static str,
    what: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage<'a> {
    nav: &'a str,
    me: Me,
    c: CaseView,
    timeline: Vec<TimelineRow>,
    /// (id, short id, state, opened)
    others: Vec<(String, String, &'static str, String)>,
    known_lists: Vec<String>,
}

fn decision_view(d: &CaseDecision) -> DecisionView {
    DecisionView {
        event_type: d.event_type.as_str(),
        transaction_id: d.transaction_id.clone(),
        occurred_at: d.occurred_at.clone(),
        amount: amount_text(d.amount.minor_units, &d.amount.currency),
        merchant: d.merchant_id.clone(),
        score: d.score,
        reason: d.reason.clone().unwrap_or_default(),
        rules: d
            .rules
            .iter()
            .map(|r| RuleView {
                rule_id: r.rule_id.to_string(),
                version: r.version_label.to_string(),
                mode: r.mode.as_str(),
                outcome: r.outcome.as_str(),
                score: r.score,
                reason_code: r.reason_code.clone(),
                message: r.message.clone(),
                evidence: r.evidence.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
                lists: r
                    .lists
                    .iter()
                    .map(|l| format!("{}@{}", l.list, crate::lists::version_text(l.version)))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
    }
}

fn timeline_decision(d: &CaseDecision, kind: &'static str) -> TimelineRow {
    TimelineRow {
        at: d.occurred_at.clone(),
        kind,
        what: d.event_type.as_str().to_owned(),
        detail: format!(
            "{} · {} at {} · score {}{}",
            d.transaction_id,
            amount_text(d.amount.minor_units, &d.amount.currency),
            d.merchant_id,
            d.score,
            if d.fired.is_empty() { String::new() } else { format!(" · {}", d.fired.join(", ")) }
        ),
    }
}

async fn case_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<QueueQuery>,
) -> Response {
    let s = match app.reader(&headers, Role::Viewer) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let snapshot = app.store.snapshot();
    let Some(c) = snapshot.case(&id) else {
        return app.problem(&s, StatusCode::NOT_FOUND, "No such case", "No case has this id (it may not be read yet).");
    };
    let (amount, currency) = case_amount(c);
    let unlocked: Vec<&str> = c.unlocks.iter().map(|u| u.transaction_id.as_str()).collect();
    let mut entities = vec![c.account_id.clone()];
    for d in &c.decisions {
        if !entities.contains(&d.merchant_id) {
            entities.push(d.merchant_id.clone());
        }
    }
    let view = CaseView {
        case_id: c.case_id.clone(),
        short_id: c.case_id[..8.min(c.case_id.len())].to_owned(),
        account: c.account_id.clone(),
        state: c.state.as_str(),
        locked: c.locked,
        opened_at: c.opened_at.clone(),
        score: c.max_score,
        amount: amount_text(amount, currency),
        decisions: c.decisions.iter().map(decision_view).collect(),
        resolution: c
            .resolution
            .as_ref()
            .map(|r| (r.verdict.as_str(), r.analyst.clone(), r.at.clone(), r.note.clone().unwrap_or_default())),
        locks: c
            .decisions
            .iter()
            .filter(|d| d.event_type == DecisionType::AccountLocked && !unlocked.contains(&d.transaction_id.as_str()))
            .map(|d| d.transaction_id.clone())
            .collect(),
        entities,
    };
    let mut timeline: Vec<TimelineRow> = c.recent.iter().map(|d| timeline_decision(d, "before")).collect();
    timeline.extend(c.decisions.iter().map(|d| timeline_decision(d, "flagged")));
    timeline.extend(c.confirmations.iter().map(|x| TimelineRow {
        at: x.at.clone(),
        kind: "confirmation",
        what: "Customer confirmed".to_owned(),
        detail: format!("{} at {}", x.transaction_id, x.merchant_id),
    }));
    timeline.extend(c.unlocks.iter().map(|u| TimelineRow {
        at: u.at.clone(),
        kind: "unlock",
        what: "Unlocked".to_owned(),
        detail: format!(
            "the lock of {} by {}{}",
            u.transaction_id,
            u.analyst,
            u.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
        ),
    }));
    if let Some(r) = &c.resolution {
        timeline.push(TimelineRow {
            at: r.at.clone(),
            kind: "resolution",
            what: format!("Resolved {}", r.verdict.as_str()),
            detail: format!("by {}{}", r.analyst, r.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()),
        });
    }
    timeline.sort_by(|a, b| a.at.cmp(&b.at));
    let others = snapshot
        .account_cases(&c.account_id)
        .filter(|o| o.case_id != c.case_id)
        .map(|o| {
            (o.case_id.clone(), o.case_id[..8.min(o.case_id.len())].to_owned(), o.state.as_str(), o.opened_at.clone())
        })
        .collect();
    let known_lists = app.lists.current().lists().map(|(name, _)| name.to_owned()).collect();
    render(&CasePage { nav: "queue", me: app.me(&s, flash_text(&q.done)), c: view, timeline, others, known_lists })
}

#[derive(Deserialize)]
struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    note: String,
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// Writes `line` (keyed `key`) as `kind` off the async threads; then the
/// audit record, done or refused; then the answer.
async fn act(
    app: &Arc<App>,
    s: &Session,
    mut audit: AuditRecord,
    kind: Kind,
    key: String,
    line: String,
    done: String,
) -> Response {
    let a = app.clone();
    let written = tokio::task::spawn_blocking(move || a.sink.write(kind, &key, &line)).await;
    match written {
        Ok(Ok(place)) => {
            audit.detail = Some(place);
            let problem = app.audit(audit).await;
            app.store.refresh();
            if let Some(p) = problem {
                return app.problem(s, StatusCode::INTERNAL_SERVER_ERROR, "Done, but not audited", &p);
            }
            Redirect::to(&done).into_response()
        }
        Ok(Err(e)) => {
            audit.outcome = "refused";
            audit.detail = Some(e.to_string());
            app.audit(audit).await;
            app.problem(s, StatusCode::SERVICE_UNAVAILABLE, "Not written", &e.to_string())
        }
        Err(e) => app.problem(s, StatusCode::INTERNAL_SERVER_ERROR, "Not written", &e.to_string()),
    }
}

async fn resolve(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> Response {
    let s = match app.actor(&headers, Role::Analyst, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let snapshot = app.store.snapshot();
    let Some(c) = snapshot.case(&id) else {
        return app.problem(&s, StatusCode::NOT_FOUND, "No such case", "No case has this id.");
    };
    let verdict = match form.verdict.as_str() {
        "fraud" => Verdict::Fraud,
        "legitimate" => Verdict::Legitimate,
        _ => return app.problem(&s, StatusCode::BAD_REQUEST, "No verdict", "Choose fraud or legitimate."),
    };
    let transactions: Vec<String> = c.decisions.iter().map(|d| d.transaction_id.clone()).collect();
    let pattern = if verdict == Verdict::Fraud { non_empty(&form.pattern) } else { None };
    let resolved = match CaseResolved::new(
        &c.account_id,
        &transactions,
        verdict,
        pattern,
        &s.user,
        non_empty(&form.note),
        OffsetDateTime::now_utc(),
    ) {
        Ok(r) => r,
        Err(e) => return app.problem(&s, StatusCode::BAD_REQUEST, "Not a valid verdict", &e.to_string()),
    };
    let mut audit = AuditRecord::new(&s.user, s.role.as_str(), address(from), "case-resolve", c.case_id.clone());
    audit.before = serde_json::json!({ "state": c.state, "resolution": c.resolution });
    audit.after = serde_json::json!({
        "state": if verdict == Verdict::Fraud { CaseState::Fraud } else { CaseState::Legitimate },
        "verdict": verdict.as_str(), "pattern": pattern, "transactions": transactions,
    });
    audit.note = non_empty(&form.note).map(str::to_owned);
    let line = serde_json::to_string(&resolved).expect("a disposition serializes");
    let done = format!("/cases/{}?done=resolved", c.case_id);
    act(&app, &s, audit, Kind::Disposition, c.account_id.clone(), line, done).await
}

#[derive(Deserialize)]
struct UnlockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    transaction: String,
    #[serde(default)]
    note: String,
}

async fn unlock(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<UnlockForm>,
) -> Response {
    let s = match app.actor(&headers, Role::Analyst, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let snapshot = app.store.snapshot();
    let Some(c) = snapshot.case(&id) else {
        return app.problem(&s, StatusCode::NOT_FOUND, "No such case", "No case has this id.");
    };
    let is_lock =
        c.decisions.iter().any(|d| d.event_type == DecisionType::AccountLocked && d.transaction_id == form.transaction);
    if !is_lock {
        return app.problem(&s, StatusCode::BAD_REQUEST, "No such lock", "The case has no lock by this transaction.");
    }
    let unlock = match AccountUnlocked::new(
        &c.account_id,
        &form.transaction,
        &s.user,
        non_empty(&form.note),
        OffsetDateTime::now_utc(),
    ) {
        Ok(u) => u,
        Err(e) => return app.problem(&s, StatusCode::BAD_REQUEST, "Not a valid unlock", &e.to_string()),
    };
    let mut audit = AuditRecord::new(&s.user, s.role.as_str(), address(from), "account-unlock", c.account_id.clone());
    audit.before = serde_json::json!({ "locked_by": form.transaction, "case": c.case_id });
    audit.after = serde_json::json!({ "unlocked": form.transaction });
    audit.note = non_empty(&form.note).map(str::to_owned);
    let line = serde_json::to_string(&unlock).expect("an unlock serializes");
    let done = format!("/cases/{}?done=unlocked", c.case_id);
    act(&app, &s, audit, Kind::Unlock, c.account_id.clone(), line, done).await
}

// ---------------------------------------------------------------- lists

#[derive(Deserialize)]
struct ListForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    list: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    note: String,
}

async fn change_list(
    app: Arc<App>,
    from: SocketAddr,
    headers: HeaderMap,
    form: ListForm,
    action: ListAction,
    back: impl FnOnce(&str) -> String,
) -> Response {
    let s = match app.actor(&headers, Role::Analyst, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let expires = match non_empty(&form.expires) {
        None => None,
        Some(t) => match OffsetDateTime::parse(t, &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                return app.problem(
                    &s,
                    StatusCode::BAD_REQUEST,
                    "Not a valid change",
                    "Expires must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z.",
                );
            }
        },
    };
    let (list, value) = (form.list.trim(), form.value.trim());
    let change =
        match ListChanged::new(list, value, action, expires, &s.user, non_empty(&form.note), OffsetDateTime::now_utc())
        {
            Ok(c) => c,
            Err(e) => return app.problem(&s, StatusCode::BAD_REQUEST, "Not a valid change", &e.to_string()),
        };
    let lists = app.lists.current();
    let before = lists.get(list).and_then(|l| l.entries().find(|(v, _)| *v == value).map(|(_, e)| e.clone()));
    if action == ListAction::Add
        && before.is_none()
        && lists.get(list).is_some_and(|l| l.len() >= app.list_limits.max_entries_per_list)
    {
        return app.problem(&s, StatusCode::BAD_REQUEST, "List full", "The list holds as many entries as weir allows.");
    }
    let verb = if action == ListAction::Add { "list-add" } else { "list-remove" };
    let mut audit = AuditRecord::new(&s.user, s.role.as_str(), address(from), verb, change.key());
    audit.before = serde_json::json!({ "entry": before });
    audit.after = match action {
        ListAction::Add => {
            serde_json::json!({ "entry": { "analyst": s.user, "expires_at": change.expires_at.map(|t| t.format(&Rfc3339).unwrap_or_default()) } })
        }
        ListAction::Remove => serde_json::json!({ "entry": null }),
    };
    audit.note = change.note.clone();
    let line = serde_json::to_string(&change).expect("a list change serializes");
    let done = back(list);
    act(&app, &s, audit, Kind::ListChange, change.key(), line, done).await
}

async fn case_list_add(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ListForm>,
) -> Response {
    let id = if app.store.snapshot().case(&id).is_some() { id } else { String::new() };
    change_list(app, from, headers, form, ListAction::Add, |_| {
        if id.is_empty() { "/?done=listed".to_owned() } else { format!("/cases/{id}?done=listed") }
    })
    .await
}

async fn list_add(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ListForm>,
) -> Response {
    change_list(app, from, headers, form, ListAction::Add, |l| {
        url_query(&[("list", l), ("done", "listed")]).replacen("/?", "/lists?", 1)
    })
    .await
}

async fn list_remove(
    State(app): State<Arc<App>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ListForm>,
) -> Response {
    change_list(app, from, headers, form, ListAction::Remove, |l| {
        url_query(&[("list", l), ("done", "unlisted")]).replacen("/?", "/lists?", 1)
    })
    .await
}

struct EntryView {
    value: String,
    analyst: String,
    added: String,
    expires: String,
}

struct SelectedList {
    name: String,
    entries: Vec<EntryView>,
    more: usize,
}

#[derive(Template)]
#[template(path = "console/lists.html")]
struct ListsPage<'a> {
    nav: &'a str,
    me: Me,
    lists: Vec<(String, usize, String)>,
    total: usize,
    source: String,
    selected: Option<SelectedList>,
    list_name: String,
    refusals: Vec<String>,
    /// (when, who, change, list, value, expires), newest first.
    changes: Vec<(String, String, &'static str, String, String, String)>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListsQuery {
    list: String,
    done: String,
}

async fn lists_page(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<ListsQuery>) -> Response {
    let s = match app.reader(&headers, Role::Viewer) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let current = app.lists.current();
    let status = app.lists.status();
    let selected = current.get(&q.list).map(|l| {
        let mut entries: Vec<(&str, &crate::lists::Entry)> = l.entries().collect();
        entries.sort_by(|a, b| b.1.added_at_ms.cmp(&a.1.added_at_ms).then_with(|| a.0.cmp(b.0)));
        let more = entries.len().saturating_sub(MAX_ENTRIES_SHOWN);
        SelectedList {
            name: q.list.clone(),
            entries: entries
                .into_iter()
                .take(MAX_ENTRIES_SHOWN)
                .map(|(v, e)| EntryView {
                    value: v.to_owned(),
                    analyst: e.analyst.clone(),
                    added: crate::lists::time_text(e.added_at_ms),
                    expires: e.expires_at_ms.map(crate::lists::time_text).unwrap_or_else(|| "never".to_owned()),
                })
                .collect(),
            more,
        }
    });
    let page = ListsPage {
        nav: "lists",
        me: app.me(&s, flash_text(&q.done)),
        lists: current.lists().map(|(n, l)| (n.to_owned(), l.len(), crate::lists::version_text(l.version()))).collect(),
        total: current.total_entries(),
        source: status.source.clone(),
        selected,
        list_name: q.list.clone(),
        refusals: status.refusals.iter().map(|r| r.to_string()).collect(),
        changes: status
            .recent
            .iter()
            .rev()
            .map(|c| {
                (
                    crate::lists::time_text(c.at_ms),
                    c.analyst.clone(),
                    c.action.as_str(),
                    c.list.clone(),
                    c.value.clone(),
                    c.expires_at_ms.map(crate::lists::time_text).unwrap_or_default(),
                )
            })
            .collect(),
    };
    render(&page)
}

// ---------------------------------------------------------------- audit

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    nav: &'a str,
    me: Me,
    rows: Vec<(String, String, String, String, String, String, String)>,
    total: usize,
    source: String,
}

async fn audit_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = match app.reader(&headers, Role::Admin) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let a = app.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<(Vec<Vec<u8>>, String), String> {
        match (&a.kafka, &a.console.audit_file) {
            (Some(k), _) => {
                crate::kafka::read_range(k, &k.topics.audit, crate::kafka::Bound::Edge, crate::kafka::Bound::Edge)
                    .map(|r| (r, format!("topic {}", k.topics.audit)))
                    .map_err(|e| e.to_string())
            }
            (None, Some(path)) => match std::fs::read(path) {
                Ok(text) => Ok((
                    text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect(),
                    format!("file {}", path.display()),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok((Vec::new(), format!("file {}", path.display())))
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
            (None, None) => Ok((Vec::new(), "nowhere (no console.audit_file)".to_owned())),
        }
    })
    .await;
    let (records, source) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return app.problem(&s, StatusCode::SERVICE_UNAVAILABLE, "Cannot read the audit log", &e),
        Err(e) => {
            return app.problem(&s, StatusCode::INTERNAL_SERVER_ERROR, "Cannot read the audit log", &e.to_string());
        }
    };
    let rows = records
        .iter()
        .rev()
        .take(MAX_AUDIT_SHOWN)
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r).ok())
        .map(|v| {
            (
                text(&v["occurred_at"]),
                format!("{} ({})", text(&v["user"]), text(&v["role"])),
                text(&v["action"]),
                text(&v["target"]),
                text(&v["before"]),
                text(&v["after"]),
                format!("{} {}", text(&v["outcome"]), text(&v["detail"])),
            )
        })
        .collect();
    render(&AuditPage { nav: "audit", me: app.me(&s, None), rows, total: records.len(), source })
}

// ---------------------------------------------------------------- rules

struct RuleRow {
    id: String,
    version: String,
    mode: String,
    hash: String,
    invocations: u64,
    hits: u64,
    errors: u64,
    quarantine: String,
}

#[derive(Default)]
struct InstanceView {
    addr: String,
    error: Option<String>,
    engine: String,
    counters: String,
    rules: Vec<RuleRow>,
    /// (generation, at, changes, took effect), newest first.
    swaps: Vec<(u64, String, String, String)>,
    refusals: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/rules.html")]
struct RulesPage<'a> {
    nav: &'a str,
    me: Me,
    instances: Vec<InstanceView>,
    /// (file name, modified)
    reports: Vec<(String, String)>,
    configured: bool,
}

/// Bytes of an instance's /status read at most.
const MAX_STATUS_BYTES: u64 = 16 << 20;
/// Swaps and refusals shown per instance.
const RECENT_SHOWN: usize = 10;

fn fetch_status(addr: &str, token: Option<&str>) -> Result<serde_json::Value, String> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(3))).build().into();
    let mut request = agent.get(format!("http://{addr}/status"));
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let mut response = request.call().map_err(|e| e.to_string())?;
    let text = response.body_mut().with_config().limit(MAX_STATUS_BYTES).read_to_string().map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not a weir status: {e}"))
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn instance_view(addr: &str, status: Result<serde_json::Value, String>) -> InstanceView {
    let s = match status {
        Ok(s) => s,
        Err(e) => return InstanceView { addr: addr.to_owned(), error: Some(e), ..Default::default() },
    };
    let p = &s["pipeline"];
    let stats = &p["rules"];
    let rules = s["rules"]["active"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let id = text(&v["rule_id"]);
            let st = &stats[id.as_str()];
            RuleRow {
                version: text(&v["version_label"]),
                mode: text(&v["mode"]),
                hash: text(&v["hash"]).chars().take(19).collect(),
                invocations: st["invocations"].as_u64().unwrap_or(0),
                hits: st["hits"].as_u64().unwrap_or(0),
                errors: st["errors"].as_u64().unwrap_or(0),
                quarantine: if st["quarantined"].as_bool() == Some(true) {
                    format!("quarantined: {}", text(&st["quarantine_reason"]))
                } else {
                    String::new()
                },
                id,
            }
        })
        .collect();
    let swaps = s["rules"]["swaps"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(RECENT_SHOWN)
        .map(|w| {
            let at = w["at"].as_f64().map(|t| crate::lists::time_text((t * 1000.0) as i64)).unwrap_or_default();
            let changes = w["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let v = |k: &str| {
                        format!("{} {} ({})", text(&c[k]["rule_id"]), text(&c[k]["version_label"]), text(&c[k]["mode"]))
                    };
                    match c["change"].as_str() {
                        Some("added") => format!("added {}", v("to")),
                        Some("replaced") => format!("replaced {} by {}", v("from"), v("to")),
                        Some("removed") => format!("removed {}", v("from")),
                        _ => text(c),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            (w["generation"].as_u64().unwrap_or(0), at, changes, text(&w["took_effect"]))
        })
        .collect();
    let refusals = s["rules"]["refusals"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(RECENT_SHOWN)
        .map(|r| {
            let path = text(&r["path"]);
            let file = path.rsplit('/').next().unwrap_or_default();
            crate::events::shown(&format!("{file}: {}", text(&r["reason"])), 1024).into_owned()
        })
        .collect();
    InstanceView {
        addr: addr.to_owned(),
        error: None,
        engine: text(&s["engine_version"]),
        counters: format!(
            "{} records read, {} decided ({}), {} dead-lettered, {} batches committed",
            p["records"].as_u64().unwrap_or(0),
            p["decisions"].as_object().map_or(0, |d| d.values().filter_map(serde_json::Value::as_u64).sum::<u64>()),
            p["decisions"]
                .as_object()
                .map(|d| d.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            p["dead_letters"].as_u64().unwrap_or(0),
            p["batches"].as_u64().unwrap_or(0)
        ),
        rules,
        swaps,
        refusals,
    }
}

/// Whether `name` may be served from the reports directory: a plain file
/// name of letters, digits, `.`, `_`, `-`, not hidden, `.html` or `.json`.
fn report_name(name: &str) -> Option<&'static str> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match name.rsplit_once('.') {
        Some((_, "html")) if plain => Some("text/html; charset=utf-8"),
        Some((_, "json")) if plain => Some("application/json"),
        _ => None,
    }
}

/// The reports in `dir`: regular files with a servable name, newest first.
fn reports_in(dir: &std::path::Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            report_name(&name)?;
            let meta = e.metadata().ok().filter(|m| m.file_type().is_file())?;
            Some((meta.modified().ok()?, name))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
        .into_iter()
        .take(100)
        .map(|(t, name)| {
            let ms = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            (name, crate::lists::time_text(ms))
        })
        .collect()
}

async fn rules_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = match app.reader(&headers, Role::Viewer) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let a = app.clone();
    let read = tokio::task::spawn_blocking(move || {
        let instances = a
            .console
            .instances
            .iter()
            .map(|addr| instance_view(addr, fetch_status(addr, a.status_token.as_deref())))
            .collect::<Vec<_>>();
        let reports = a.console.reports_dir.as_deref().map(reports_in).unwrap_or_default();
        (instances, reports)
    })
    .await;
    let (instances, reports) = match read {
        Ok(r) => r,
        Err(e) => return app.problem(&s, StatusCode::INTERNAL_SERVER_ERROR, "Cannot read the rules", &e.to_string()),
    };
    let configured = app.console.reports_dir.is_some();
    render(&RulesPage { nav: "rules", me: app.me(&s, None), instances, reports, configured })
}

/// Reports are served at most this large.
const MAX_REPORT_BYTES: u64 = 64 << 20;

async fn report(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let s = match app.reader(&headers, Role::Viewer) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let (Some(dir), Some(content_type)) = (app.console.reports_dir.clone(), report_name(&name)) else {
        return app.problem(&s, StatusCode::NOT_FOUND, "No such report", "There is no report by this name.");
    };
    let path = dir.join(&name);
    let read = tokio::task::spawn_blocking(move || -> Option<Vec<u8>> {
        // A regular file, not a link, within the cap.
        let meta = std::fs::symlink_metadata(&path).ok()?;
        (meta.file_type().is_file() && meta.len() <= MAX_REPORT_BYTES).then_some(())?;
        std::fs::read(&path).ok()
    })
    .await
    .ok()
    .flatten();
    match read {
        // The report's own styles, and nothing active: no script, no form, no fetch.
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, content_type),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
                ),
            ],
            bytes,
        )
            .into_response(),
        None => app.problem(&s, StatusCode::NOT_FOUND, "No such report", "There is no report by this name."),
    }
}
