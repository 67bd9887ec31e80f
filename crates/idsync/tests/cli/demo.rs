//! `idsync demo`: the simulated tenant provisioned, and changes shown arriving.

use super::*;

#[test]
fn demo_provisions_the_simulated_tenant_and_shows_changes_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let o = idsync()
        .args([
            "demo",
            "--users",
            "120",
            "--groups",
            "8",
            "--memberships",
            "300",
            "--port",
            "0",
            "--exit",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("Atlassian Cloud now has 120 users and 8 groups"),
        "{t}"
    );
    for what in [
        "new title",
        "disabled",
        "newcomer created",
        "newcomer in the group",
    ] {
        assert!(t.contains(&format!(": {what}")), "{what}: {t}");
    }
}

#[test]
fn demo_provisions_the_simulated_jira_and_shows_changes_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let o = idsync()
        .args([
            "demo",
            "--target",
            "jira",
            "--users",
            "60",
            "--groups",
            "5",
            "--memberships",
            "150",
            "--exit",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("simulated Jira Data Center 9.12.2 at https://127.0.0.1:"),
        "{t}"
    );
    assert!(t.contains("succeeded in"), "{t}");
    assert!(
        t.contains(" 0 failed; the simulated Jira now has 61 users"),
        "{t}"
    );
    for what in [
        "new title in the user property",
        "disabled",
        "newcomer created",
        "newcomer in the group",
    ] {
        assert!(
            t.contains("arrived in Jira after") && t.contains(&format!(": {what}\n")),
            "{what}: {t}"
        );
    }
}

/// A browser without a screen: cookies per host, redirects followed by hand, forms posted.
struct Visitor {
    http: reqwest::blocking::Client,
    cookies: std::collections::HashMap<(String, String), String>,
}

impl Visitor {
    fn new(ca: &Path) -> Self {
        let ca = std::fs::read(ca).unwrap();
        Self {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            cookies: std::collections::HashMap::new(),
        }
    }

    /// GET or POST `url`, then follow redirects; the final URL, status and body.
    fn go(
        &mut self,
        mut url: reqwest::Url,
        mut form: Option<Vec<(String, String)>>,
    ) -> (reqwest::Url, u16, String) {
        for _ in 0..20 {
            let host = url.host_str().unwrap_or_default().to_owned()
                + &url.port_or_known_default().unwrap_or(0).to_string();
            let mut req = match form.take() {
                Some(f) => self.http.post(url.clone()).form(&f),
                None => self.http.get(url.clone()),
            };
            let jar: Vec<String> = self
                .cookies
                .iter()
                .filter(|((h, _), _)| *h == host)
                .map(|((_, n), v)| format!("{n}={v}"))
                .collect();
            if !jar.is_empty() {
                req = req.header("cookie", jar.join("; "));
            }
            let resp = req.send().unwrap();
            for c in resp.headers().get_all("set-cookie") {
                let c = c.to_str().unwrap();
                let (n, v) = c.split(';').next().unwrap().split_once('=').unwrap();
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(&(host.clone(), n.to_owned()));
                } else {
                    self.cookies
                        .insert((host.clone(), n.to_owned()), v.to_owned());
                }
            }
            let status = resp.status().as_u16();
            if let Some(loc) = resp.headers().get("location") {
                url = url.join(loc.to_str().unwrap()).unwrap();
                continue;
            }
            return (url, status, resp.text().unwrap());
        }
        panic!("more than 20 redirects");
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The attribute `name` of an HTML tag's text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// The demo's sign-in: its simulated Jira's "Log in", the simulated tenant's login page with
/// the printed user and password, back through idsync to Jira, which shows group names; the
/// user is then in Atlassian Cloud (idsync's SCIM endpoint) and in the Crowd directory.
#[test]
fn demo_signs_a_user_in_to_its_simulated_product_with_group_names() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let mut child = idsync()
        .args([
            "demo",
            "--users",
            "80",
            "--groups",
            "6",
            "--memberships",
            "200",
            "--port",
            "0",
            "--dir",
        ])
        .arg(&demo_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _kill = Server(child, None);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !out.contains("Ctrl-C to stop") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            Err(_) => panic!("the demo did not get to its sign-in: {out}"),
        }
    }
    let after = |label: &str| -> String {
        let i = out
            .find(label)
            .unwrap_or_else(|| panic!("no {label:?} in {out}"))
            + label.len();
        out[i..].split_whitespace().next().unwrap().to_owned()
    };
    let product = after("open ");
    let user = after("\n       user:");
    let password = after("\n       password:");
    let crowd_url = after("Server URL:");
    let groups_line = &out[out.find("(a new user of the tenant, in ").unwrap() + 30..];
    let mut groups: Vec<String> = groups_line[..groups_line.find(':').unwrap()]
        .split(", ")
        .map(str::to_owned)
        .collect();
    groups.sort();
    assert_eq!(groups.len(), 2, "{out}");

    let mut browser = Visitor::new(&demo_dir.join("ca.pem"));
    let (home_url, status, home) = browser.go(reqwest::Url::parse(&product).unwrap(), None);
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("Log in"), "{home}");
    // "Log in": through idsync to the tenant's login page.
    let (login_url, status, login) = browser.go(home_url.join("/login").unwrap(), None);
    assert_eq!(status, 200, "{login_url}: {login}");
    assert!(
        login.contains("id=\"i0118\""),
        "not the tenant's login page: {login}"
    );
    let form_tag = &login[login.find("<form").unwrap()..];
    let action = attr(form_tag, "action").unwrap();
    let mut fields: Vec<(String, String)> = form_tag
        .split("<input")
        .skip(1)
        .filter(|t| t.contains("type=\"hidden\""))
        .map(|t| (attr(t, "name").unwrap(), attr(t, "value").unwrap()))
        .collect();
    // A wrong password first: the page again, with Entra's words.
    let mut wrong = fields.clone();
    wrong.push(("login".into(), user.clone()));
    wrong.push(("passwd".into(), "not-the-password".into()));
    let (_, status, page) = browser.go(login_url.join(&action).unwrap(), Some(wrong));
    assert_eq!(status, 200);
    assert!(page.contains("AADSTS50126"), "{page}");
    fields.push(("login".into(), user.clone()));
    fields.push(("passwd".into(), password));
    let (end, status, page) = browser.go(login_url.join(&action).unwrap(), Some(fields));
    assert_eq!(status, 200, "{end}: {page}");
    assert_eq!(end.path(), "/callback", "{page}");
    assert!(
        page.contains(&format!("<b id=\"user\">{user}</b>")),
        "{page}"
    );
    let mut shown: Vec<String> = page
        .split("<li class=\"group\">")
        .skip(1)
        .map(|s| unescape(&s[..s.find("</li>").unwrap()]))
        .collect();
    shown.sort();
    for g in &groups {
        assert!(
            shown.contains(g),
            "Jira was given {shown:?}, not the names {groups:?}"
        );
    }
    assert!(
        shown.iter().all(|g| !g.contains("-0000-") && g.len() != 36),
        "group ids: {shown:?}"
    );

    // Provisioned when Jira got the login: in the Crowd directory and in Atlassian Cloud.
    let http = reqwest::blocking::Client::new();
    let crowd_password = std::fs::read_to_string(demo_dir.join("jira.password")).unwrap();
    let r = http
        .get(format!(
            "{crowd_url}/rest/usermanagement/1/user/group/nested"
        ))
        .query(&[("username", user.as_str())])
        .basic_auth("jira", Some(crowd_password.trim()))
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "user not in the Crowd directory");
    let v: serde_json::Value = r.json().unwrap();
    let crowd_groups: Vec<String> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    for g in &groups {
        assert!(crowd_groups.contains(g), "{crowd_groups:?}");
    }
    let base = &out[out.find("SCIM endpoint behaving").unwrap()..];
    let scim = after_in(base, " at ");
    let token = std::fs::read_to_string(demo_dir.join("atlassian.token")).unwrap();
    let v: serde_json::Value = http
        .get(format!("{scim}/Users"))
        .query(&[("filter", format!("userName eq \"{user}\""))])
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["totalResults"], 1, "user not in Atlassian Cloud: {v}");
}

fn after_in(text: &str, label: &str) -> String {
    let i = text.find(label).unwrap() + label.len();
    text[i..].split_whitespace().next().unwrap().to_owned()
}
