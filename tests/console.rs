//! The analysts' console (`weir console`, `weir::console`): every route's
//! access rules, CSRF, login throttling and escaping, over HTTP against the
//! embedded run's files; and an analyst's work in a real headless Chromium
//! (Debian's package, over the DevTools protocol) against the real broker,
//! with the events it writes and their effect on weir's next decisions.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir::config::Config;
use weir::console::{Role, UserConfig, hash_password};

use crate::util::{card_testing, tempdir, text, weir};

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A request over a fresh connection (`Connection: close`); `form` is sent
/// url-encoded as a POST.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    session: Option<&str>,
    extra: &[(&str, &str)],
    form: Option<&str>,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = session {
        req.push_str(&format!("Cookie: __Host-weir-console={token}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        req.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Reply { status, headers, body: body.to_owned() }
}

/// Percent-encodes a form value.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Logs in; the session token.
fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let r = http(addr, "POST", "/login", None, &[], Some(&format!("user={}&password={}", enc(user), enc(password))));
    assert_eq!(r.status, 303, "{user} logs in: {}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Secure"), "{cookie}");
    cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with its CSRF token") + 19;
    page[at..at + 64].to_owned()
}

const PASSWORDS: [(&str, Role, &str); 3] = [
    ("viewer-3", Role::Viewer, "viewer pass 1"),
    ("analyst-7", Role::Analyst, "analyst pass 2"),
    ("admin-1", Role::Admin, "admin pass 3"),
];

fn users() -> Vec<UserConfig> {
    PASSWORDS
        .iter()
        .map(|(name, role, pw)| UserConfig {
            name: (*name).into(),
            role: *role,
            password_hash: Some(hash_password(pw)),
        })
        .collect()
}

fn console_config(mut config: Config) -> Config {
    config.console.listen = "127.0.0.1:0".into();
    config.console.users = users();
    config.console.refresh_ms = 200;
    config.console.login_attempts = 5;
    config
}

fn lines_of(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const XSS_MERCHANT: &str = "<img src=x onerror=alert(1)>";
const XSS_DEVICE: &str = "<script>alert('device')</script>";

/// The routes the console serves, as `pages.rs` declares them: the tests
/// below must cover every one.
fn declared_routes() -> Vec<String> {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/pages.rs")).unwrap();
    source
        .match_indices(".route(\"")
        .map(|(i, m)| source[i + m.len()..].split('"').next().unwrap().to_owned())
        .collect()
}

/// Every route refuses what it must: no session (pages send to the login,
/// actions answer 401), a role below the route's (403), a form without or
/// with a wrong CSRF token or from another site (403), and nothing refused
/// is written. Text from events and rules (a merchant id, a rule's evidence)
/// is escaped on every page; repeated bad logins are throttled; a logout
/// ends the session.
#[test]
fn every_route_refuses_the_unauthenticated_the_wrong_role_and_forged_forms() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    // acct-x: card testing at a merchant named like markup (locked); acct-y:
    // a purchase from a device on the block list whose id is a script.
    let mut lines = card_testing("acct-x", "tx-x", 0);
    lines = lines.into_iter().map(|l| l.replace("m-ticketsrus", &XSS_MERCHANT.replace('"', "\\\""))).collect();
    assert!(lines[0].contains("<img"), "the merchant is in the transactions: {}", lines[0]);
    let tx = weir::cases::CaseTx {
        account: Some("acct-y".into()),
        device_fingerprint: Some(XSS_DEVICE.into()),
        ..Default::default()
    };
    lines.push(serde_json::to_string(&tx.to_event("tx-y-1")).unwrap());
    std::fs::write(dir.path().join("input.jsonl"), lines.join("\n") + "\n").unwrap();
    let block = weir::events::ListChanged::new(
        "blocked-devices",
        XSS_DEVICE,
        weir::events::ListAction::Add,
        None,
        "analyst-7",
        None,
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
    )
    .unwrap();
    std::fs::write(dir.path().join("lists.jsonl"), serde_json::to_string(&block).unwrap() + "\n").unwrap();
    let o = weir(
        &["run", "--rules", "rules", "--input", "input.jsonl", "--output", "out", "--lists", "lists.jsonl"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));

    let mut config = console_config(Config::default());
    config.lists.file = Some(dir.path().join("lists.jsonl"));
    config.console.decisions = Some(dir.path().join("out/decisions.jsonl"));
    config.console.dispositions = Some(dir.path().join("dispositions.jsonl"));
    config.console.input = Some(dir.path().join("input.jsonl"));
    config.console.audit_file = Some(dir.path().join("audit.jsonl"));
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    std::fs::write(dir.path().join("reports/candidate.html"), "<!DOCTYPE html><title>backtest</title>").unwrap();
    std::os::unix::fs::symlink(dir.path().join("input.jsonl"), dir.path().join("reports/link.json")).unwrap();
    config.console.reports_dir = Some(dir.path().join("reports"));
    let console = weir::console::start(&config.console, &config.lists, config.kafka.as_ref()).unwrap();
    let addr = console.addr;

    let viewer = login(addr, "viewer-3", "viewer pass 1");
    let analyst = login(addr, "analyst-7", "analyst pass 2");
    let admin = login(addr, "admin-1", "admin pass 3");
    let queue = http(addr, "GET", "/", Some(&viewer), &[], None);
    assert_eq!(queue.status, 200);
    let case_of = |account: &str| {
        let row = queue
            .body
            .split("<tr")
            .find(|r| r.contains(account))
            .unwrap_or_else(|| panic!("{account}: {}", queue.body));
        let at = row.find("/cases/").unwrap() + 7;
        row[at..at + 36].to_owned()
    };
    let (case_x, case_y) = (case_of("acct-x"), case_of("acct-y"));
    let page = http(addr, "GET", &format!("/cases/{case_x}"), Some(&analyst), &[], None);
    let analyst_csrf = csrf_of(&page.body);
    let viewer_csrf = csrf_of(&http(addr, "GET", "/", Some(&viewer), &[], None).body);
    let admin_csrf = csrf_of(&http(addr, "GET", "/", Some(&admin), &[], None).body);

    // Every route, with the least role it needs (None: public).
    let routes: Vec<(&str, String, Option<Role>, &str)> = vec![
        ("GET", "/login".into(), None, ""),
        ("POST", "/login".into(), None, ""),
        ("GET", "/assets/console.css".into(), None, ""),
        ("POST", "/logout".into(), Some(Role::Viewer), ""),
        ("GET", "/".into(), Some(Role::Viewer), ""),
        ("GET", format!("/cases/{case_x}"), Some(Role::Viewer), ""),
        ("POST", format!("/cases/{case_x}/resolve"), Some(Role::Analyst), "verdict=fraud"),
        ("POST", format!("/cases/{case_x}/unlock"), Some(Role::Analyst), "transaction=tx-x-4"),
        ("POST", format!("/cases/{case_x}/list"), Some(Role::Analyst), "list=blocked-accounts&value=acct-x"),
        ("GET", "/lists".into(), Some(Role::Viewer), ""),
        ("POST", "/lists/add".into(), Some(Role::Analyst), "list=blocked-accounts&value=acct-z"),
        ("POST", "/lists/remove".into(), Some(Role::Analyst), "list=blocked-devices&value=fp-1"),
        ("GET", "/rules".into(), Some(Role::Viewer), ""),
        ("GET", "/reports/candidate.html".into(), Some(Role::Viewer), ""),
        ("GET", "/audit".into(), Some(Role::Admin), ""),
    ];
    let covered: Vec<String> =
        routes.iter().map(|(_, p, _, _)| p.replace(&case_x, "{id}").replace("candidate.html", "{name}")).collect();
    for declared in declared_routes() {
        assert!(covered.contains(&declared), "route {declared} is not covered by this test");
    }
    let written = || {
        ["dispositions.jsonl", "input.jsonl", "lists.jsonl"]
            .map(|f| std::fs::read(dir.path().join(f)).unwrap_or_default())
    };
    let before = written();
    let sessions = [
        (Role::Viewer, &viewer, &viewer_csrf),
        (Role::Analyst, &analyst, &analyst_csrf),
        (Role::Admin, &admin, &admin_csrf),
    ];
    for (method, path, role, form) in &routes {
        let Some(role) = role else {
            let r = http(addr, method, path, None, &[], (*method == "POST").then_some("user=x&password=y"));
            assert!(r.status == 200 || r.status == 401, "{method} {path} is public: {}", r.status);
            continue;
        };
        let post = *method == "POST";
        // No session, and a made-up one.
        for token in [None, Some("0".repeat(64))] {
            let form = post.then(|| format!("{form}&csrf={viewer_csrf}"));
            let r = http(addr, method, path, token.as_deref(), &[], form.as_deref());
            if post {
                assert_eq!(r.status, 401, "{method} {path} without a session");
            } else {
                assert_eq!(
                    (r.status, r.header("location")),
                    (303, Some("/login")),
                    "{method} {path} without a session"
                );
            }
        }
        for (has, token, csrf) in &sessions {
            if post {
                // Without the token, with another session's, and from another site: refused.
                for (form, origin) in [
                    (form.to_string(), None),
                    (format!("{form}&csrf={}", "f".repeat(64)), None),
                    (format!("{form}&csrf={csrf}"), Some("http://evil.example")),
                ] {
                    let extra: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
                    let r = http(addr, method, path, Some(token), &extra, Some(&form));
                    assert_eq!(r.status, 403, "{method} {path} as {has:?} with a forged form ({form}, {origin:?})");
                }
            }
            if has < role {
                let form = post.then(|| format!("{form}&csrf={csrf}"));
                let r = http(addr, method, path, Some(token), &[], form.as_deref());
                assert_eq!(r.status, 403, "{method} {path} as {has:?}, which needs {role:?}");
            } else if !post {
                let r = http(addr, method, path, Some(token), &[], None);
                assert_eq!(r.status, 200, "{method} {path} as {has:?}");
            }
        }
    }
    assert_eq!(written(), before, "nothing refused was written");

    // Reports: only plain names of regular files in the reports directory.
    let rules = http(addr, "GET", "/rules", Some(&viewer), &[], None).body;
    assert!(rules.contains("href=\"/reports/candidate.html\"") && !rules.contains("link.json"), "{rules}");
    for name in ["link.json", "..%2Finput.jsonl", "%2E%2E%2Finput.jsonl", "missing.html", "candidate.txt"] {
        let r = http(addr, "GET", &format!("/reports/{name}"), Some(&viewer), &[], None);
        assert_eq!(r.status, 404, "/reports/{name}");
    }
    let report = http(addr, "GET", "/reports/candidate.html", Some(&viewer), &[], None);
    assert!(report.header("content-security-policy").is_some_and(|c| c.contains("sandbox")), "{:?}", report.headers);

    // An analyst's verdict is written, and audited with before and after.
    let r = http(
        addr,
        "POST",
        &format!("/cases/{case_x}/resolve"),
        Some(&analyst),
        &[("Origin", &format!("http://{addr}"))],
        Some(&format!("csrf={analyst_csrf}&verdict=fraud&pattern=card-testing&note=%3Cb%3Echecked%3C%2Fb%3E")),
    );
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some(format!("/cases/{case_x}?done=resolved").as_str())),
        "{}",
        r.body
    );
    let verdicts = lines_of(&dir.path().join("dispositions.jsonl"));
    assert_eq!(verdicts.len(), 1);
    assert_eq!(
        (verdicts[0]["account_id"].as_str(), verdicts[0]["analyst"].as_str(), verdicts[0]["verdict"].as_str()),
        (Some("acct-x"), Some("analyst-7"), Some("fraud"))
    );
    let audit = lines_of(&dir.path().join("audit.jsonl"));
    let resolve = audit.iter().find(|a| a["action"] == "case-resolve").expect("the verdict is audited");
    assert_eq!(
        (
            resolve["user"].as_str(),
            resolve["target"].as_str(),
            resolve["before"]["state"].as_str(),
            resolve["after"]["state"].as_str()
        ),
        (Some("analyst-7"), Some(case_x.as_str()), Some("open"), Some("fraud"))
    );
    assert!(
        audit.iter().filter(|a| a["action"] == "login").count() >= 3
            && audit.iter().any(|a| a["action"] == "login-refused")
    );

    // Markup from events and rules is shown as text on every page.
    crate::kafka::wait_for("the verdict on the case page", Duration::from_secs(20), || {
        http(addr, "GET", &format!("/cases/{case_x}"), Some(&viewer), &[], None).body.contains("id=\"resolution\"")
    });
    let pages = [
        http(addr, "GET", "/?state=all", Some(&viewer), &[], None).body,
        http(addr, "GET", &format!("/cases/{case_x}"), Some(&viewer), &[], None).body,
        http(addr, "GET", &format!("/cases/{case_y}"), Some(&viewer), &[], None).body,
        http(addr, "GET", "/lists?list=blocked-devices", Some(&viewer), &[], None).body,
        http(addr, "GET", "/audit", Some(&admin), &[], None).body,
    ];
    for (i, page) in pages.iter().enumerate() {
        assert!(
            !page.contains("<img") && !page.contains("<script") && !page.contains("<b>"),
            "page {i} holds live markup:\n{page}"
        );
    }
    // Shown as text: escaped in the page, the text itself once unescaped.
    let unescaped = |page: &str| {
        page.replace("&#60;", "<")
            .replace("&#62;", ">")
            .replace("&#39;", "'")
            .replace("&#34;", "\"")
            .replace("&#38;", "&")
    };
    assert!(unescaped(&pages[1]).contains(XSS_MERCHANT), "the merchant, escaped:\n{}", pages[1]);
    assert!(
        unescaped(&pages[2]).contains(&format!("value = {XSS_DEVICE}")),
        "the blocklist rule's evidence, escaped:\n{}",
        pages[2]
    );
    assert!(unescaped(&pages[1]).contains("by analyst-7: <b>checked</b>"), "the analyst's note, escaped");
    assert!(unescaped(&pages[3]).contains(XSS_DEVICE), "the list entry, escaped");

    // An analyst takes the entry off; the lists page says who did it, when.
    let form = format!("csrf={analyst_csrf}&list=blocked-devices&value={}&note=cleared", enc(XSS_DEVICE));
    let r = http(addr, "POST", "/lists/remove", Some(&analyst), &[], Some(&form));
    assert_eq!(r.status, 303, "{}", r.body);
    let removal = lines_of(&dir.path().join("lists.jsonl")).pop().unwrap();
    assert_eq!((removal["action"].as_str(), removal["analyst"].as_str()), (Some("remove"), Some("analyst-7")));
    crate::kafka::wait_for("the removal on the lists page", Duration::from_secs(20), || {
        let page = http(addr, "GET", "/lists", Some(&viewer), &[], None).body;
        page.contains("<td>analyst-7</td><td>remove</td><td><a href=\"/lists?list=blocked-devices\">")
    });

    // Repeated bad logins are throttled, even for the right password after.
    // (Five failures per name or per address in the window: this address
    // already failed once above.)
    let mut refused = 0;
    while http(addr, "POST", "/login", None, &[], Some("user=viewer-3&password=guess")).status == 401 {
        refused += 1;
        assert!(refused <= 5, "a sixth failed login is still checked");
    }
    assert_eq!(refused, 4, "the fifth failure from this address is the last one checked");
    let r = http(addr, "POST", "/login", None, &[], Some("user=viewer-3&password=viewer+pass+1"));
    assert_eq!(r.status, 429, "throttled: {}", r.body);
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);

    // A logout ends the session.
    let r = http(addr, "POST", "/logout", Some(&admin), &[], Some(&format!("csrf={admin_csrf}")));
    assert_eq!(r.status, 303);
    assert_eq!(http(addr, "GET", "/", Some(&admin), &[], None).status, 303);
    drop(console);
}

/// Where the browser tests leave their screenshots.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An analyst's day in headless Chromium against the real broker: log in,
/// open the queue, open the locked account's case, confirm fraud, unlock the
/// account, add a device to the block list. The events land on their
/// topics (the verdict on the dispositions topic, the unlock on weir's
/// input, the list change on the lists topic, four audit records), and
/// weir's next decisions follow them: the device is blocked, the account
/// is no longer locked.
#[test]
fn an_analyst_works_a_case_in_chromium_and_weir_applies_what_they_did() {
    use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
    use weir::events::DecisionType::*;

    let _shared = crate::kafka::BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = crate::kafka::Setup::new("console");
    let purchase = |id: &str, account: &str, device: &str, secs: i64| {
        let tx = weir::cases::CaseTx {
            account: Some(account.into()),
            device_fingerprint: Some(device.into()),
            after_secs: Some(secs),
            ..Default::default()
        };
        serde_json::to_string(&tx.to_event(id)).unwrap()
    };
    let mut lines = card_testing("acct-c1", "tx-c", 0);
    lines.push(purchase("tx-d-1", "acct-c2", "fp-console-laptop", 60));
    setup.produce(&lines);
    let (mut weir_a, status) = setup.start_with_status("a");
    setup.wait_for_decisions(6, Duration::from_secs(90));

    let mut config = console_config(setup.weir_config("console"));
    config.console.refresh_ms = 300;
    config.console.instances = vec![status.clone()];
    let console = weir::console::start(&config.console, &config.lists, config.kafka.as_ref()).unwrap();
    let base = format!("http://{}", console.addr);

    let profile = tempdir();
    let options = headless_chrome::LaunchOptions::default_builder()
        .path(Some(PathBuf::from("/usr/bin/chromium")))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .user_data_dir(Some(profile.path().to_owned()))
        .args(vec![std::ffi::OsStr::new("--disable-gpu"), std::ffi::OsStr::new("--disable-dev-shm-usage")])
        .idle_browser_timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let browser = headless_chrome::Browser::new(options).expect("Chromium starts (Debian: apt-get install chromium)");
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(30));
    let shot = |name: &str| {
        let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
        std::fs::write(screenshots().join(name), png).unwrap();
    };
    let text_of = |css: &str| tab.wait_for_element(css).unwrap().get_inner_text().unwrap();

    // Log in.
    tab.navigate_to(&format!("{base}/")).unwrap().wait_until_navigated().unwrap();
    assert!(tab.get_url().ends_with("/login"), "{}", tab.get_url());
    tab.wait_for_element("#user").unwrap().click().unwrap();
    tab.type_str("analyst-7").unwrap();
    tab.wait_for_element("#password").unwrap().click().unwrap();
    tab.type_str("analyst pass 2").unwrap();
    tab.press_key("Enter").unwrap();
    tab.wait_until_navigated().unwrap();

    // The queue: one open case, the locked account's.
    assert_eq!(text_of("#open-count"), "1");
    let row = text_of("#queue tbody tr");
    assert!(row.contains("acct-c1") && row.contains("locked") && row.contains("card-testing"), "{row}");
    shot("queue.png");

    // The case page.
    tab.wait_for_element("#queue .case-link").unwrap().click().unwrap();
    tab.wait_until_navigated().unwrap();
    assert_eq!(text_of("#account"), "acct-c1");
    assert!(text_of("#timeline").contains("tx-c-1"), "the account's decisions before the case");
    shot("case.png");
    let case_url = tab.get_url();

    // Confirm fraud.
    tab.wait_for_element("#verdict-fraud").unwrap().click().unwrap();
    tab.wait_for_element("#pattern").unwrap().click().unwrap();
    tab.type_str("card-testing").unwrap();
    tab.wait_for_element("#resolve").unwrap().click().unwrap();
    tab.wait_until_navigated().unwrap();
    assert!(text_of("#flash").contains("Verdict written"));
    crate::kafka::wait_for("the case resolved as fraud", Duration::from_secs(30), || {
        tab.navigate_to(&case_url).unwrap().wait_until_navigated().unwrap();
        text_of("#case-state") == "fraud"
    });

    // Unlock the account (the lock by tx-c-4 is the one offered).
    assert_eq!(tab.wait_for_element("#unlock-transaction").unwrap().get_inner_text().unwrap().trim(), "tx-c-4");
    tab.wait_for_element("#unlock-note").unwrap().click().unwrap();
    tab.type_str("customer called, card replaced").unwrap();
    tab.wait_for_element("#unlock").unwrap().click().unwrap();
    tab.wait_until_navigated().unwrap();
    assert!(text_of("#flash").contains("Unlock written"));

    // Add the laptop seen elsewhere to the block list, from the keyboard.
    tab.wait_for_element("#list-name").unwrap().click().unwrap();
    tab.type_str("blocked-devices").unwrap();
    tab.press_key("Tab").unwrap();
    tab.type_str("fp-console-laptop").unwrap();
    tab.wait_for_element("#add-to-list").unwrap().click().unwrap();
    tab.wait_until_navigated().unwrap();
    assert!(text_of("#flash").contains("List change written"));

    // The lists page shows the entry, who added it and when, once the console read it back.
    crate::kafka::wait_for("the entry on the lists page", Duration::from_secs(30), || {
        tab.navigate_to(&format!("{base}/lists?list=blocked-devices")).unwrap().wait_until_navigated().unwrap();
        tab.find_element("#entries").is_ok_and(|e| e.get_inner_text().is_ok_and(|t| t.contains("fp-console-laptop")))
    });
    let entry = text_of("#entries tbody tr");
    assert!(entry.contains("fp-console-laptop") && entry.contains("analyst-7") && entry.contains("never"), "{entry}");
    let change = text_of("#changes tbody tr");
    assert!(change.contains("analyst-7") && change.contains("add") && change.contains("fp-console-laptop"), "{change}");
    shot("lists.png");

    // The events, on the broker.
    let read = |topic: &str| -> Vec<serde_json::Value> {
        weir_testkit::read_to_end(crate::kafka::broker(), &[setup.topic(topic)], Duration::from_secs(30))
            .iter()
            .map(|c| serde_json::from_slice(&c.payload).unwrap())
            .collect()
    };
    let verdicts = read("dispositions");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(
        (&verdicts[0]["account_id"], &verdicts[0]["verdict"], &verdicts[0]["analyst"], &verdicts[0]["pattern"]),
        (&"acct-c1".into(), &"fraud".into(), &"analyst-7".into(), &"card-testing".into())
    );
    assert_eq!(verdicts[0]["transaction_ids"], serde_json::json!(["tx-c-4", "tx-c-5"]));
    let unlocks: Vec<_> = read("in").into_iter().filter(|e| e["event_type"] == "AccountUnlocked").collect();
    assert_eq!(unlocks.len(), 1);
    assert_eq!((&unlocks[0]["transaction_id"], &unlocks[0]["analyst"]), (&"tx-c-4".into(), &"analyst-7".into()));
    let changes = read("lists");
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (&changes[0]["list"], &changes[0]["value"], &changes[0]["action"], &changes[0]["analyst"]),
        (&"blocked-devices".into(), &"fp-console-laptop".into(), &"add".into(), &"analyst-7".into())
    );
    let audit = read("audit");
    let actions: Vec<&str> =
        audit.iter().filter(|a| a["user"] == "analyst-7").map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["login", "case-resolve", "account-unlock", "list-add"], "{audit:?}");

    // weir applies them: the device is blocked, the account unlocked.
    crate::kafka::wait_for("the list on the instance", Duration::from_secs(30), || {
        crate::deploy::get(&status, "/status").is_some_and(|s| {
            s["lists"]["lists"].as_array().is_some_and(|l| l.iter().any(|l| l["name"] == "blocked-devices"))
        })
    });
    setup.produce_quietly(&[
        purchase("tx-d-2", "acct-c2", "fp-console-laptop", 7200),
        purchase("tx-c-6", "acct-c1", "fp-own-phone", 7200),
    ]);
    // Six decisions, the unlock weir accepted on the account-locked topic, two more decisions.
    setup.wait_for_decisions(9, Duration::from_secs(90));

    // The rules page: the instance's rules with their hits.
    tab.navigate_to(&format!("{base}/rules")).unwrap().wait_until_navigated().unwrap();
    let rules = text_of(".live-rules");
    let row = rules.lines().find(|l| l.starts_with("card-testing")).unwrap_or_else(|| panic!("{rules}"));
    assert!(row.contains("enforce"), "{row}");
    let hits: u64 = row.split('\t').nth(5).and_then(|h| h.trim().parse().ok()).unwrap_or_else(|| panic!("{row:?}"));
    assert!(hits >= 2, "card-testing hit the lock and the one after: {row:?}");
    shot("rules.png");
    weir_a.terminate(crate::kafka::STOP_DEADLINE);
    let records = weir_testkit::read_to_end(crate::kafka::broker(), &setup.decision_topics(), Duration::from_secs(60));
    let (unlocked, got): (Vec<_>, Vec<_>) =
        records.iter().partition(|r| r.payload.windows(17).any(|w| w == b"\"AccountUnlocked\""));
    assert_eq!(unlocked.len(), 1, "weir accepted the unlock");
    let got: Vec<weir::events::DecisionEvent> =
        got.iter().map(|r| serde_json::from_slice(&r.payload).unwrap()).collect();
    let of = |t: &str| got.iter().find(|d| d.transaction_id == t).unwrap_or_else(|| panic!("{t} decided: {got:?}"));
    assert_eq!(of("tx-c-4").event_type, AccountLocked);
    assert_eq!(of("tx-d-1").event_type, TransactionVerified);
    let blocked = of("tx-d-2");
    assert_eq!(blocked.event_type, FraudSuspected, "{blocked:?}");
    assert!(blocked.rules.iter().any(|r| &*r.rule_id == "blocklist" && r.reason_code == "BLOCKED_DEVICE"));
    assert_ne!(of("tx-c-6").event_type, AccountLocked, "the unlock lifted the lock: {:?}", of("tx-c-6"));
    drop(console);
}

/// Behind a single sign-on proxy: the header's user, if configured, gets
/// its role and no password is asked; anyone else is sent to the login;
/// forms still need the page's CSRF token.
#[test]
fn the_proxy_header_signs_in_configured_users_only() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("input.jsonl"), card_testing("acct-p", "tx-p", 0).join("\n") + "\n").unwrap();
    let o = weir(&["run", "--rules", "rules", "--input", "input.jsonl", "--output", "out"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let mut config = Config::default();
    config.console.listen = "127.0.0.1:0".into();
    config.console.proxy_user_header = Some("X-Forwarded-User".into());
    config.console.users = vec![
        UserConfig { name: "sso-analyst".into(), role: Role::Analyst, password_hash: None },
        UserConfig { name: "sso-viewer".into(), role: Role::Viewer, password_hash: None },
    ];
    config.console.decisions = Some(dir.path().join("out/decisions.jsonl"));
    config.console.dispositions = Some(dir.path().join("dispositions.jsonl"));
    config.console.audit_file = Some(dir.path().join("audit.jsonl"));
    let console = weir::console::start(&config.console, &config.lists, config.kafka.as_ref()).unwrap();
    let addr = console.addr;
    fn as_user(user: &str) -> [(&'static str, &str); 1] {
        [("X-Forwarded-User", user)]
    }

    assert_eq!(http(addr, "GET", "/", None, &[], None).status, 303, "no header: the login");
    let login = http(addr, "GET", "/login", None, &[], None);
    assert!(login.body.contains("single sign-on") && !login.body.contains("type=\"password\""), "{}", login.body);
    assert_eq!(http(addr, "POST", "/login", None, &[], Some("user=sso-analyst&password=x")).status, 400);
    assert_eq!(http(addr, "GET", "/", None, &as_user("mallory"), None).status, 303, "an unknown user: the login");
    let queue = http(addr, "GET", "/", None, &as_user("sso-analyst"), None);
    assert_eq!(queue.status, 200);
    assert!(queue.body.contains("sso-analyst <small>(analyst)</small>"), "{}", queue.body);
    let at = queue.body.find("/cases/").unwrap() + 7;
    let case = &queue.body[at..at + 36];
    let path = format!("/cases/{case}/resolve");
    let csrf = csrf_of(&queue.body);
    // The viewer's token is not the analyst's; without one, refused.
    let viewer_csrf = csrf_of(&http(addr, "GET", "/", None, &as_user("sso-viewer"), None).body);
    assert_ne!(csrf, viewer_csrf);
    for form in ["verdict=legitimate".to_owned(), format!("verdict=legitimate&csrf={viewer_csrf}")] {
        assert_eq!(http(addr, "POST", &path, None, &as_user("sso-analyst"), Some(&form)).status, 403, "{form}");
    }
    let form = format!("verdict=legitimate&csrf={viewer_csrf}");
    assert_eq!(
        http(addr, "POST", &path, None, &as_user("sso-viewer"), Some(&form)).status,
        403,
        "a viewer may not resolve"
    );
    assert!(!dir.path().join("dispositions.jsonl").exists(), "nothing refused was written");
    let form = format!("verdict=legitimate&note=own+purchases&csrf={csrf}");
    assert_eq!(http(addr, "POST", &path, None, &as_user("sso-analyst"), Some(&form)).status, 303);
    let verdicts = lines_of(&dir.path().join("dispositions.jsonl"));
    assert_eq!((verdicts.len(), verdicts[0]["analyst"].as_str()), (1, Some("sso-analyst")));
}
