//! The web UI in a real browser: Debian's Chromium driven through ChromeDriver (WebDriver
//! over HTTP), against a real `tess server` and runner. Screenshots of each page go to
//! `target/ui-screenshots/`.

use crate::harness::{API_TOKEN, SECRET, agent, github_push, setup, wait_for_showing};
use crate::server::run_of_delivery;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process and one headless Chromium session in it.
struct Browser {
    driver: Child,
    url: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent()
            .delete(&format!("{}/session/{}", self.url, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_driver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Browser {
    /// `None` (said loudly; a failure under CI) when ChromeDriver is not installed.
    fn start() -> Option<Browser> {
        let Some(driver) = find_driver() else {
            crate::support::skip_or_fail(
                "chromium-driver is not installed (scripts/chromium.sh installs it)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let ready = || {
            let mut r = agent().get(&format!("{url}/status")).call().ok()?;
            let v: Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        };
        wait_for_showing(
            || "chromedriver to start".into(),
            Duration::from_secs(20),
            ready,
        );
        let profile = tempfile::tempdir().expect("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display())],
            }
        }}});
        let created = call("POST", &format!("{url}/session"), Some(&caps));
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Some(Browser {
            driver: child,
            url,
            session,
            _profile: profile,
        })
    }

    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        call(
            method,
            &format!("{}/session/{}{path}", self.url, self.session),
            body,
        )["value"]
            .clone()
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    fn current_url(&self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element `css` selects, waiting for it to appear.
    fn element(&self, css: &str) -> String {
        wait_for_showing(
            || format!("`{css}` on {}", self.current_url()),
            Duration::from_secs(20),
            || {
                let found = self.command(
                    "POST",
                    "/element",
                    Some(&json!({"using": "css selector", "value": css})),
                );
                found[ELEMENT].as_str().map(String::from)
            },
        )
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.command("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the text of `css` contains `needle` (the page is not reloaded).
    fn wait_for_text(&self, css: &str, needle: &str) {
        wait_for_showing(
            || format!("`{needle}` in `{css}`: {:?}", self.text(css)),
            Duration::from_secs(30),
            || self.text(css).contains(needle).then_some(()),
        );
    }

    fn session_cookie(&self) -> String {
        let cookie = self.command("GET", "/cookie/tess_session", None);
        assert_eq!(cookie["httpOnly"], true, "{cookie}");
        assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
        format!("tess_session={}", cookie["value"].as_str().expect("value"))
    }

    /// Logs in with the API token through the login form and waits for the runs page.
    fn log_in(&self, server_url: &str) {
        self.open(&format!("{server_url}/login"));
        self.type_into("#token", API_TOKEN);
        self.click("form.login button");
        self.element("#runs-body");
    }

    /// Runs `script` in the page and returns its value.
    fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        );
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("png");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("screenshot");
    }
}

fn call(method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut response = match (method, body) {
        ("POST", Some(b)) => agent().post(url).send_json(b),
        ("POST", None) => agent().post(url).send_empty(),
        _ => agent().get(url).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let text = response.body_mut().read_to_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A workflow whose job prints, waits for `gate`, prints again and fails: its log grows
/// while the page is open, and it can be re-run.
fn gated_workflow(gate: &Path) -> String {
    format!(
        "name: ui\non: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo before-gate\n          echo '::warning::look here'\n          while [ ! -e {} ]; do sleep 0.05; done\n          echo after-gate\n          exit 1\n",
        gate.display()
    )
}

#[test]
fn the_web_ui_logs_in_shows_runs_and_logs_live_and_its_buttons_work() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(
        root,
        "github",
        "octo/hello",
        30,
        &crate::harness::databases(root)[0],
    );
    let _runner = server.runner("r1", "");
    let gate = root.join("gate");

    // Without a session every page leads to the login.
    browser.open(&format!("{}/", server.url));
    browser.element("#token");
    assert!(
        browser.current_url().ends_with("/login"),
        "{}",
        browser.current_url()
    );
    browser.screenshot("login");
    browser.type_into("#token", "not-a-token");
    browser.click("form.login button");
    browser.wait_for_text("p.error", "not an API token");
    browser.type_into("#token", API_TOKEN);
    browser.click("form.login button");
    browser.wait_for_text("#runs-body", "No runs yet");

    // A push appears on the open page without a reload.
    let sha = repo.commit(
        &[(".github/workflows/ui.yml", &gated_workflow(&gate))],
        "main",
    );
    let body = github_push("octo/hello", "refs/heads/main", None, &sha);
    let (status, reply) = server.hook("github", "push", "ui-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let run_id = run_of_delivery(&server, "github:ui-1");
    browser.wait_for_text("#runs-body", "ui");
    browser.wait_for_text("#runs-body", "running");
    browser.screenshot("runs");

    // The run's page: its DAG and jobs; the job's log streams while the job runs.
    browser.click("#runs-body a");
    browser.element("svg.dag");
    assert!(browser.current_url().ends_with(&format!("/runs/{run_id}")));
    browser.screenshot("run");
    browser.click("table.jobs a");
    browser.wait_for_text("#log", "before-gate");
    std::fs::write(&gate, "").expect("open the gate");
    browser.wait_for_text("#log", "after-gate");
    assert!(browser.text("ul.annotations").contains("look here"));
    browser.screenshot("log");

    // The raw log downloads with the session (a real HTTP request with the browser's
    // HttpOnly, SameSite=Strict cookie).
    let cookie = browser.session_cookie();
    let raw_url = format!("{}/runs/{run_id}/jobs/build/raw", server.url);
    let mut raw = agent()
        .get(&raw_url)
        .header("cookie", &cookie)
        .call()
        .expect("raw log");
    assert!(
        raw.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .starts_with("attachment"),
    );
    let text = raw.body_mut().read_to_string().expect("text");
    assert!(
        text.contains("before-gate") && text.contains("after-gate"),
        "{text}"
    );

    // Re-run failed, then cancel the new run: the states change on the open page.
    server.finished_run(&run_id, Duration::from_secs(30));
    std::fs::remove_file(&gate).expect("close the gate");
    browser.open(&format!("{}/runs/{run_id}", server.url));
    browser.wait_for_text("table.jobs", "failure");
    browser.click("form[action$='/rerun'] input[name=failed] ~ button");
    wait_for_showing(
        || browser.current_url(),
        Duration::from_secs(20),
        || {
            let url = browser.current_url();
            (!url.ends_with(&format!("/runs/{run_id}"))).then_some(())
        },
    );
    browser.wait_for_text("table.jobs", "running");
    browser.click("form[action$='/cancel'] button");
    browser.wait_for_text("table.jobs", "cancelled");
    browser.screenshot("cancelled");

    // A phone-sized window: the pages fit its width (nothing scrolls sideways).
    browser.resize(390, 844);
    for page in ["/".to_string(), format!("/runs/{run_id}")] {
        browser.open(&format!("{}{page}", server.url));
        browser.element("main h1");
        let fits =
            browser.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1;");
        assert_eq!(fits, true, "{page} is wider than a phone");
    }
    browser.screenshot("narrow");
    browser.resize(1280, 900);

    // A state-changing request without the CSRF token is refused; without a session, a
    // page redirects to the login.
    let refused = agent()
        .post(&format!("{}/runs/{run_id}/rerun", server.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .send("csrf=forged");
    assert_eq!(refused.map(|r| r.status().as_u16()).unwrap_or(0), 403);
    let no_session = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
        .get(&format!("{}/runs/{run_id}", server.url))
        .call()
        .expect("page");
    assert_eq!(no_session.status().as_u16(), 303);
    assert_eq!(no_session.headers()["location"], "/login");
}

#[test]
fn a_stale_rollback_in_the_web_ui_gets_a_conflict_not_a_silent_win() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let one = "name: ci\non: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo one\n";
    let two = "name: ci\non:\n  push:\n  schedule:\n    - cron: '0 6 * * 1'\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo two\n  test:\n    runs-on: self-hosted\n    steps:\n      - run: echo test\n";
    let (repo, server) = setup(
        root,
        "github",
        "octo/hello",
        30,
        &crate::harness::databases(root)[0],
    );
    // Two versions: the first one, then a second the API sync reads.
    repo.commit(&[(".github/workflows/ci.yml", one)], "main");
    let (status, first) = server.post_with("/api/v1/repos/octo/hello/sync", &[]);
    assert_eq!(status, 200, "{first}");
    repo.commit(&[(".github/workflows/ci.yml", two)], "main");
    let (status, second) = server.post_with("/api/v1/repos/octo/hello/sync", &[]);
    assert_eq!(
        (status, &second["outcome"]),
        (200, &json!("applied")),
        "{second}"
    );
    let (v1, v2) = (
        first["version_id"].as_str().expect("v1").to_string(),
        second["version_id"].as_str().expect("v2").to_string(),
    );

    browser.log_in(&server.url);
    browser.open(&format!("{}/repos/octo/hello/versions", server.url));
    browser.wait_for_text("#current", &v2);
    assert!(browser.text("table.versions").contains("+ job test"));
    browser.screenshot("versions");
    // Compare: the older version (preselected) to the newer one.
    browser.click("form[action$='/versions/diff'] button");
    browser.wait_for_text("#diff", "job test");
    assert!(browser.current_url().contains(&format!("from={v1}")));
    browser.open(&format!("{}/repos/octo/hello/versions", server.url));
    browser.wait_for_text("#current", &v2);
    // Someone else rolls back while this page is open...
    let quoted = format!("\"{v2}\"");
    let (status, body) = server.post_with(
        &format!("/api/v1/repos/octo/hello/versions/{v1}/rollback"),
        &[("if-match", &quoted)],
    );
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("applied")),
        "{body}"
    );
    // ...so this page's rollback (made against v2) is refused and says why.
    browser.click(&format!("form[action$='/versions/{v1}/rollback'] button"));
    browser.wait_for_text("p.flash", "someone changed it after this page was loaded");
    assert!(browser.text("#current").contains("pinned by a rollback"));
    let (_, now) = server.get("/api/v1/repos/octo/hello/versions/current");
    assert_eq!(now["version_id"], v1.as_str());
    // From the fresh page, unpin goes back to what the source shows.
    browser.click("form[action$='/versions/unpin'] button");
    browser.wait_for_text("#current", &v2);
    let (_, now) = server.get("/api/v1/repos/octo/hello/versions/current");
    assert_eq!(now["version_id"], v2.as_str());
    // The current version's schedule, with its next fire times (Mondays, 06:00 UTC).
    browser.click("a[href$='/schedules']");
    browser.wait_for_text("table.schedules", "0 6 * * 1");
    let next = browser.text("table.schedules");
    assert!(next.contains("T06:00:00Z"), "{next}");
    browser.screenshot("schedules");
}

/// A session cookie from a real login (no browser needed).
fn login(server: &crate::harness::Server) -> String {
    let answer = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
        .post(&format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("token={API_TOKEN}"))
        .expect("login");
    assert_eq!(answer.status().as_u16(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().expect("cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    cookie.split(';').next().expect("value").to_string()
}

#[test]
fn a_matrix_job_is_one_box_of_the_dag_with_its_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(
        root,
        "github",
        "octo/hello",
        30,
        &crate::harness::databases(root)[0],
    );
    let workflow = "name: m\non: push\njobs:\n  build:\n    runs-on: nobody\n    steps: [{run: make}]\n  test:\n    needs: build\n    runs-on: nobody\n    strategy:\n      matrix:\n        os: [linux, mac, windows]\n    steps: [{run: make test}]\n";
    let sha = repo.commit(&[(".github/workflows/m.yml", workflow)], "main");
    let body = github_push("octo/hello", "refs/heads/main", None, &sha);
    let (status, reply) = server.hook("github", "push", "matrix-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let run_id = run_of_delivery(&server, "github:matrix-1");
    let cookie = login(&server);
    let mut page = agent()
        .get(&format!("{}/runs/{run_id}", server.url))
        .header("cookie", &cookie)
        .call()
        .expect("run page");
    let html = page.body_mut().read_to_string().expect("html");
    let svg = &html[html.find("<svg").expect("svg")..html.find("</svg>").expect("end")];
    assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
    assert!(svg.contains(">test (3 instances)</text>"), "{svg}");
    // One edge build → the group, not one per instance; the jobs table lists all three.
    assert_eq!(svg.matches("class=\"edge\"").count(), 1, "{svg}");
    assert_eq!(
        html.matches("/jobs/test%20%28").count(),
        4,
        "three rows and the box"
    );
}

#[test]
fn a_long_log_is_shown_from_its_tail_wherever_the_cut_falls_in_a_character() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(
        root,
        "github",
        "octo/hello",
        30,
        &crate::harness::databases(root)[0],
    );
    let _runner = server.runner("r1", "");
    // 1.2 MB of three-byte characters, then a line of `k` bytes: across k = 0, 1, 2 the
    // 1 MiB cut falls at each place inside a character once.
    let workflow = r#"name: big
on: push
jobs:
  big:
    runs-on: self-hosted
    strategy:
      matrix:
        k: ['0', '1', '2']
    steps:
      - run: |
          awk 'BEGIN{for(i=0;i<4000;i++){s=""; for(j=0;j<100;j++) s=s "€"; print s}}'
          awk -v k=${{ matrix.k }} 'BEGIN{s=""; for(i=0;i<k;i++) s=s "a"; print s}'
"#;
    let sha = repo.commit(&[(".github/workflows/big.yml", workflow)], "main");
    let body = github_push("octo/hello", "refs/heads/main", None, &sha);
    let (status, reply) = server.hook("github", "push", "big-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let run_id = run_of_delivery(&server, "github:big-1");
    let run = server.finished_run(&run_id, Duration::from_secs(60));
    assert_eq!(run["status"], "success", "{run:#}");
    let cookie = login(&server);
    for k in 0..3 {
        let key = format!("big%20%28{k}%29");
        let mut page = agent()
            .get(&format!("{}/runs/{run_id}/jobs/{key}", server.url))
            .header("cookie", &cookie)
            .call()
            .expect("log page");
        assert_eq!(page.status().as_u16(), 200, "k = {k}");
        let html = page.body_mut().read_to_string().expect("html");
        assert!(html.contains("earlier lines are not shown"), "k = {k}");
        assert!(html.contains("€€€"), "k = {k}");
    }
}

/// The gates test's build and manual deploy, then a release to a protected environment.
fn gated_pipeline() -> String {
    format!(
        "stages: [build, deploy, release]\n{}{}",
        crate::gates::BUILD_AND_MANUAL_DEPLOY,
        "release:\n  stage: release\n  needs: [deploy]\n  environment: production\n  script: echo released\n"
    )
}

#[test]
fn the_web_ui_plays_manual_jobs_approves_deployments_and_shows_public_repositories_read_only() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("private")).expect("mkdir");
    let public = crate::harness::Repo::new(root);
    let private = crate::harness::Repo::new(&root.join("private"));
    // `group/app` is public and deploys to a protected environment; `octo/hello` is not.
    let config = crate::harness::config("gitlab", "group/app", &public.bare, 30).replace(
        "[repo.secrets]",
        "public = true\nprotected_environments = [\"production\"]\n[repo.secrets]",
    ) + &format!(
        "[[repo]]\nforge = \"github\"\nname = \"octo/hello\"\nclone_url = \"{}\"\nwebhook_secret = \"{SECRET}\"\n",
        private.bare.display()
    );
    std::fs::write(root.join("tess.toml"), config).expect("config");
    let server =
        crate::harness::Server::start(root, &crate::harness::databases(root)[0], "127.0.0.1:0");
    let _runner = server.runner("r1", "");
    let sha = private.commit(
        &[(".github/workflows/ci.yml", "on: push\njobs:\n  secret-build:\n    runs-on: self-hosted\n    steps:\n      - run: echo private\n")],
        "main",
    );
    let body = github_push("octo/hello", "refs/heads/main", None, &sha);
    let (status, reply) = server.hook("github", "push", "private-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let private_run = run_of_delivery(&server, "github:private-1");
    let id = crate::server::gitlab_push(&server, &public, &gated_pipeline(), "public-1");
    server.finished_run(&id, Duration::from_secs(30));

    // A visitor sees the public repository's runs and logs, none of the private one's, and
    // no button.
    browser.open(&format!("{}/", server.url));
    browser.wait_for_text("#runs-body", "group/app");
    assert!(!browser.text("#runs-body").contains("octo/hello"));
    browser.open(&format!("{}/runs/{id}", server.url));
    browser.wait_for_text("table.jobs", "manual job: starts when someone plays it");
    let buttons = browser.eval("return document.querySelectorAll('main form').length");
    assert_eq!(buttons, 0, "a visitor gets no form");
    assert!(browser.text("header").contains("Log in"));
    browser.open(&format!("{}/runs/{id}/jobs/build", server.url));
    browser.wait_for_text("#log", "built");
    let anonymous = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let private_page = anonymous
        .get(&format!("{}/runs/{private_run}", server.url))
        .call()
        .expect("page");
    assert_eq!(private_page.status().as_u16(), 303, "private: to the login");
    let runners = anonymous
        .get(&format!("{}/runners", server.url))
        .call()
        .expect("page");
    assert_eq!(runners.status().as_u16(), 303, "runners are not public");

    // Logged in: play the manual job with inputs from its form.
    browser.log_in(&server.url);
    browser.open(&format!("{}/runs/{id}", server.url));
    browser.element("form[action$='/jobs/deploy/play']");
    browser.eval(
        "document.querySelector(\"select[name='input.target_env']\").value = 'production'; return true",
    );
    browser.eval("const r = document.querySelector(\"input[name='input.replicas']\"); r.value = ''; return true");
    browser.type_into("input[name='input.replicas']", "5");
    browser.screenshot("manual-job");
    browser.click("form[action$='/jobs/deploy/play'] button");
    // The release then waits for an approval; the page shows the buttons.
    wait_for_showing(
        || format!("release to wait for an approval: {:#}", server.run(&id)),
        Duration::from_secs(30),
        || (crate::server::job(&server.run(&id), "release")["state"] == "approval").then_some(()),
    );
    browser.open(&format!("{}/runs/{id}", server.url));
    browser.wait_for_text(
        "section.gate",
        "waits for an approval to deploy to production",
    );
    browser.screenshot("approval");
    browser.click("form[action$='/jobs/release/review'] button[value='approve']");
    let run = server.finished_run(&id, Duration::from_secs(30));
    // The open page's rows follow (live updates).
    wait_for_showing(
        || "the release row to show success".to_string(),
        Duration::from_secs(30),
        || {
            let shown = browser.eval(
                "return document.querySelector(\"tr.success a[href$='/jobs/release']\") !== null",
            );
            (shown == true).then_some(())
        },
    );
    assert_eq!(run["status"], "success", "{run:#}");
    assert_eq!(crate::server::job(&run, "release")["state"], "success");
    assert!(
        server
            .log(&id, "deploy")
            .contains("deploying production x5")
    );

    // The runners page: drain the runner, then resume it.
    browser.open(&format!("{}/runners", server.url));
    browser.wait_for_text("table.runners", "r1");
    browser.click("form[action$='/drain'] button");
    browser.wait_for_text("table.runners", "draining");
    let (_, list) = server.get("/api/v1/runners");
    assert_eq!(list["runners"][0]["draining"], true, "{list:#}");
    let labels = list["runners"][0]["labels"]
        .as_array()
        .expect("labels")
        .clone();
    assert!(
        labels
            .iter()
            .all(|l| l.as_str().is_some_and(|l| !l.is_empty())),
        "`--labels \"\"` adds no empty label: {labels:?}"
    );
    browser.screenshot("runners");
    browser.click("form[action$='/drain'] button");
    wait_for_showing(
        || format!("the runner to resume: {}", browser.text("table.runners")),
        Duration::from_secs(30),
        || (!browser.text("table.runners").contains("draining")).then_some(()),
    );
    let (_, list) = server.get("/api/v1/runners");
    assert_eq!(list["runners"][0]["draining"], false, "{list:#}");
}
