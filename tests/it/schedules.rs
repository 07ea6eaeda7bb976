//! The cron scheduler on a real server with an injected clock (a file the test writes):
//! a slot fires once with the schedule event, missed slots follow the catch-up policy after
//! a restart, two servers on one database fire a slot once, and the server's next fire
//! times agree with `tess schedule`.

use crate::harness::{Repo, Server, config, on_each_database, wait_for};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const SCHEDULED: &str = "name: nightly
on:
  schedule:
    - cron: '*/5 * * * *'
    - cron: '30 2 * * *'
      timezone: Europe/Berlin
jobs:
  report:
    runs-on: self-hosted
    steps:
      - run: echo \"${{ github.event_name }} ${{ github.event.schedule }}\"
";

fn set_clock(file: &Path, time: &str) {
    std::fs::write(file, time).expect("clock");
}

fn schedules(server: &Server, query: &str) -> Value {
    let (status, body) = server.get(&format!("/api/v1/repos/octo/hello/schedules{query}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// The slots recorded for the 5-minute schedule, oldest first: (time, status, runs).
fn slots(server: &Server) -> Vec<(String, String, usize)> {
    let body = schedules(server, "");
    let mut list: Vec<(String, String, usize)> = body["slots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|s| s["schedule"].as_str().unwrap_or_default().contains("*/5"))
        .map(|s| {
            let at = chrono::DateTime::from_timestamp_millis(s["slot"].as_i64().unwrap_or(0))
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default();
            let runs = s["runs"].as_array().map_or(0, Vec::len);
            (
                at,
                s["status"].as_str().unwrap_or_default().to_string(),
                runs,
            )
        })
        .collect();
    list.sort();
    list
}

fn wait_for_slots(
    server: &Server,
    what: &str,
    check: impl Fn(&[(String, String, usize)]) -> bool,
) -> Vec<(String, String, usize)> {
    wait_for(what, Duration::from_secs(30), || {
        let now = slots(server);
        check(&now).then_some(now)
    })
}

#[test]
fn schedules_fire_once_catch_up_after_downtime_and_agree_with_tess_schedule() {
    on_each_database(|root, database| {
        let repo = Repo::new(root);
        repo.commit(&[(".github/workflows/nightly.yml", SCHEDULED)], "main");
        // TOML headers are absolute: `[scheduler]` is top-level, `[[repo.schedule]]` is
        // the repository's.
        let more = "[[repo.schedule]]\ncron = \"0 4 * * 1\"\nref = \"main\"\n\
                    variables = { REPORT = \"weekly\" }\n[scheduler]\ncatch_up = \"latest\"\n";
        let text = config("github", "octo/hello", &repo.bare, 30) + more;
        std::fs::write(root.join("tess.toml"), text).expect("config");
        let clock = root.join("clock");
        set_clock(&clock, "2026-01-05T10:01:00Z");
        let env = [("TESS_TEST_CLOCK_FILE", clock.to_str().expect("utf-8"))];
        let mut server = Server::start_with_env(root, database, "127.0.0.1:0", &env);
        // First seen at 10:01: counted from then on.
        wait_for_slots(&server, "the schedule to be seen", |s| {
            s.iter().any(|(_, status, _)| status == "origin")
        });
        // 10:05 comes: one run, for the schedule event.
        set_clock(&clock, "2026-01-05T10:05:00.200Z");
        let now = wait_for_slots(&server, "10:05 to fire", |s| {
            s.iter()
                .any(|(at, status, runs)| at == "10:05:00" && status == "fired" && *runs == 1)
        });
        assert_eq!(
            now.iter().filter(|(_, s, _)| s == "fired").count(),
            1,
            "{now:?}"
        );
        let runs = server.runs();
        assert_eq!(runs.len(), 1, "{runs:#?}");
        assert_eq!(runs[0]["event"], "schedule");
        assert_eq!(runs[0]["pipeline"], "nightly");

        // Down from 10:06 to 10:31: 10:10 … 10:30 missed; `latest` runs 10:30 only.
        server.process.kill9();
        set_clock(&clock, "2026-01-05T10:31:00Z");
        let server = Server::start_with_env(root, database, "127.0.0.1:0", &env);
        let now = wait_for_slots(&server, "the catch-up", |s| {
            s.iter()
                .any(|(at, status, _)| at == "10:30:00" && status == "fired")
        });
        let fired: Vec<&str> = now
            .iter()
            .filter(|(_, s, _)| s == "fired")
            .map(|(at, _, _)| at.as_str())
            .collect();
        assert_eq!(fired, ["10:05:00", "10:30:00"], "{now:?}");
        assert!(
            now.iter()
                .any(|(at, s, _)| at == "10:25:00" && s == "missed"),
            "{now:?}"
        );

        // A second server on the same database: 10:35 fires once between them.
        let second = Server::start_with_env(root, database, "127.0.0.1:0", &env);
        set_clock(&clock, "2026-01-05T10:35:00.100Z");
        wait_for_slots(&second, "10:35 to fire", |s| {
            s.iter()
                .any(|(at, status, runs)| at == "10:35:00" && status == "fired" && *runs == 1)
        });
        let scheduled = server
            .runs()
            .iter()
            .filter(|r| r["event"] == "schedule")
            .count();
        assert_eq!(scheduled, 3);

        // Switched off: 10:40 is recorded as `disabled` and starts nothing; switched on
        // again, 10:45 fires (10:40 is not caught up).
        let every_five = schedules(&server, "")["schedules"]
            .as_array()
            .expect("list")
            .iter()
            .find(|s| s["cron"] == "*/5 * * * *")
            .cloned()
            .expect("the */5 schedule");
        assert_eq!(every_five["enabled"], true);
        let key = every_five["key"].as_str().expect("key").to_string();
        let switch = |enabled: bool| {
            let (status, body) = server.post(
                "/api/v1/repos/octo/hello/schedules/switch",
                Some(crate::harness::API_TOKEN),
                &serde_json::json!({ "schedule": key, "enabled": enabled }),
            );
            assert_eq!(status, 200, "{body}");
        };
        switch(false);
        let (status, body) = server.post(
            "/api/v1/repos/octo/hello/schedules/switch",
            Some(crate::harness::API_TOKEN),
            &serde_json::json!({ "schedule": "nightly.yml|* * * * *|UTC", "enabled": false }),
        );
        assert_eq!(status, 404, "{body}");
        assert!(body.to_string().contains("its schedules:"), "{body}");
        set_clock(&clock, "2026-01-05T10:40:00.100Z");
        let now = wait_for_slots(&server, "10:40 to be passed over", |s| {
            s.iter().any(|(at, _, _)| at == "10:40:00")
        });
        assert!(
            now.contains(&("10:40:00".into(), "disabled".into(), 0)),
            "{now:?}"
        );
        let listed = schedules(&server, "");
        assert!(
            listed["schedules"]
                .as_array()
                .expect("list")
                .iter()
                .any(|s| s["key"] == key.as_str() && s["enabled"] == false),
            "{listed:#}"
        );
        switch(true);
        set_clock(&clock, "2026-01-05T10:45:00.100Z");
        wait_for_slots(&server, "10:45 to fire", |s| {
            s.iter()
                .any(|(at, status, runs)| at == "10:45:00" && status == "fired" && *runs == 1)
        });
        let scheduled = server
            .runs()
            .iter()
            .filter(|r| r["event"] == "schedule")
            .count();
        assert_eq!(scheduled, 4, "10:40 started nothing");

        // The server and `tess schedule` agree on every next fire time.
        let from = "2026-03-28T00:00:00Z";
        let api = schedules(&server, &format!("?from={from}&count=6"));
        let out = crate::support::tess(
            &repo.work,
            &["schedule", "--from", from, "--count", "6", "--json"],
        );
        let cli: Value = serde_json::from_slice(&out.stdout).expect("json");
        let key = |s: &Value| {
            (
                s["file"].clone(),
                s["cron"].clone(),
                s["timezone"].clone(),
                s["next"].clone(),
            )
        };
        let mut from_api: Vec<_> = api["schedules"]
            .as_array()
            .expect("list")
            .iter()
            .filter(|s| s["file"] != "tess.toml")
            .map(key)
            .collect();
        let mut from_cli: Vec<_> = cli["schedules"]
            .as_array()
            .expect("list")
            .iter()
            .map(key)
            .collect();
        from_api.sort_by_key(|k| k.1.to_string());
        from_cli.sort_by_key(|k| k.1.to_string());
        assert_eq!(from_api, from_cli);
        // The Berlin schedule over the spring-forward night: 02:30 → 03:00 once.
        assert!(api.to_string().contains("2026-03-29T01:00:00Z"), "{api:#}");
        // The config's pipeline schedule is listed with its ref.
        let config_schedule = api["schedules"]
            .as_array()
            .expect("list")
            .iter()
            .find(|s| s["file"] == "tess.toml")
            .cloned()
            .expect("config schedule");
        assert_eq!(config_schedule["ref"], "refs/heads/main");
        assert_eq!(config_schedule["next"][0], "2026-03-30T04:00:00Z");
    });
}
