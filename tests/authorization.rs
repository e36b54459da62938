//! Who may reach what (issue 9, "Access and secrets"), route by route: every API operation in the
//! OpenAPI document and every console route, without credentials, with a push token, and as an
//! agent reaching for another agent's lead. Only the push endpoint (with its token), /healthz,
//! the API document, the sign-in form and the console's assets are open.

mod common;

use common::console::{api_token_of, client, csrf_of, get, post, sign_in};
use common::{PUSH_TOKEN, Server, card};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Console routes (method, path with `{id}`), kept beside `crates/web/src/console/mod.rs`.
const CONSOLE_GET: &[&str] = &[
    "/",
    "/events",
    "/leads/{id}",
    "/admin/pushes",
    "/admin/users",
    "/admin/deliveries",
    "/admin/exports",
    "/admin/audit",
    "/export",
    "/dashboard",
];
const CONSOLE_POST: &[&str] = &[
    "/logout",
    "/leads/{id}/status",
    "/leads/{id}/owner",
    "/leads/{id}/claim",
    "/leads/{id}/notes",
    "/leads/{id}/merge",
    "/leads/{id}/unmerge",
    "/leads/{id}/dismiss",
    "/admin/pushes/{id}/replay",
    "/admin/users",
    "/admin/users/{id}/disable",
    "/admin/deliveries/{id}/redeliver",
];
/// Console routes an agent may use (on leads they may see).
const AGENT_LEAD_FORMS: &[&str] = &["/leads/{id}/status", "/leads/{id}/claim", "/leads/{id}/notes"];

const OPEN: &[&str] = &["/push/{source}", "/healthz", "/api/openapi.json"];

struct World {
    server: Server,
    admin: String,
    li: String,
    li_token: String,
    /// wang's lead, which li must never reach.
    theirs: i64,
    push_id: i64,
}

async fn world() -> World {
    let server = Server::start().await;
    server.add_user("li", "agent", "li-password-123");
    server.add_user("wang", "agent", "wang-password-123");
    let (_, answer) = server.push_json(&card("wangs-visitor")).await;
    let theirs = answer["leads"][0]["id"].as_i64().unwrap();
    let push_id = answer["push_id"].as_i64().unwrap();
    server.push_json(&card("pool-visitor")).await;
    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let (_, page) = get(&server, &admin, &format!("/leads/{theirs}")).await;
    let wang_id = common::console::user_id_in_owner_list(&page, "wang");
    let (status, _) =
        post(&server, &admin, &format!("/leads/{theirs}/owner"), &[("csrf", &csrf_of(&page)), ("owner", &wang_id)])
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let li = sign_in(&server, "li", "li-password-123").await;
    let li_token = api_token_of(&server, &admin, "li").await;
    World { server, admin, li, li_token, theirs, push_id }
}

fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            ops.push((method.to_uppercase().parse().unwrap(), path.clone()));
        }
    }
    ops
}

async fn call(server: &Server, method: Method, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
    let mut req = client().request(method, format!("{}{path}", server.base));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = req.header("content-type", "application/json").body("{\"lead_id\": 1}").send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn nothing_is_reachable_without_credentials_but_the_open_routes() {
    let w = world().await;
    let s = &w.server;
    let (_, doc) = s.get("/api/openapi.json").await;
    let ops = operations(&doc);
    assert!(ops.len() >= 14, "the document lists the API: {}", ops.len());
    for (method, path) in &ops {
        if OPEN.contains(&path.as_str()) {
            continue;
        }
        let concrete = path.replace("{id}", &w.theirs.to_string());
        for bearer in [None, Some(PUSH_TOKEN), Some("made-up-token-0123456789")] {
            let (status, body) = call(s, method.clone(), &concrete, bearer).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {concrete} with {bearer:?}: {body}");
            assert!(!body.contains("wangs-visitor"), "{method} {concrete} leaked data");
        }
    }
    for path in CONSOLE_GET {
        let concrete = path.replace("{id}", &w.theirs.to_string());
        let res = client().get(format!("{}{concrete}", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "GET {concrete}");
        assert!(res.headers()["location"].to_str().unwrap().starts_with("/login"), "GET {concrete}");
    }
    for path in CONSOLE_POST {
        let concrete = path.replace("{id}", &w.theirs.to_string());
        let res = client()
            .post(format!("{}{concrete}", s.base))
            .form(&[("csrf", "x"), ("status", "won"), ("owner", ""), ("text", "x"), ("other", "1"), ("name", "x")])
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert!(status == StatusCode::SEE_OTHER || status == StatusCode::FORBIDDEN, "POST {concrete}: {status}");
        if status == StatusCode::SEE_OTHER {
            assert!(res.headers()["location"].to_str().unwrap().starts_with("/login"), "POST {concrete}");
        }
    }
    // Nothing changed on the lead those forms aimed at.
    let (_, lead) = s.get(&format!("/api/v1/leads/{}", w.theirs)).await;
    assert_eq!(lead["status"], "new");
    assert!(lead["owner_id"].is_i64());
    // The open routes.
    for path in ["/healthz", "/api/openapi.json", "/login", "/assets/app.css", "/assets/tags.css"] {
        let res = client().get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn an_agent_reaches_no_other_agents_lead_and_no_admin_route() {
    let w = world().await;
    let s = &w.server;
    let (_, doc) = s.get("/api/openapi.json").await;
    // The API with li's token.
    for (method, path) in operations(&doc) {
        if OPEN.contains(&path.as_str()) {
            continue;
        }
        let id = if path.starts_with("/api/v1/pushes/") { w.push_id } else { w.theirs };
        let concrete = path.replace("{id}", &id.to_string());
        let (status, body) = call(s, method.clone(), &concrete, Some(&w.li_token)).await;
        if path.contains("{id}")
            || path.starts_with("/api/v1/pushes")
            || path == "/api/v1/exports"
            || path == "/api/v1/audit"
            || path == "/api/v1/stats"
        {
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                "{method} {concrete} as an agent: {status} {body}"
            );
        } else {
            assert_eq!(status, StatusCode::OK, "{method} {concrete}");
        }
        assert!(!body.contains("wangs-visitor"), "{method} {concrete} shows wang's lead to li: {body}");
    }
    // The console as li.
    let theirs = w.theirs.to_string();
    let (status, _) = get(s, &w.li, &format!("/leads/{theirs}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, inbox) = get(s, &w.li, "/").await;
    let csrf = csrf_of(&inbox);
    assert!(!inbox.contains(&format!("data-lead=\"{theirs}\"")));
    for path in CONSOLE_POST.iter().filter(|p| p.contains("/leads/")) {
        let concrete = path.replace("{id}", &theirs);
        let (status, _) = post(
            s,
            &w.li,
            &concrete,
            &[("csrf", &csrf), ("status", "won"), ("owner", ""), ("text", "mine now"), ("other", "1")],
        )
        .await;
        let allowed_kind = AGENT_LEAD_FORMS.contains(path);
        assert!(
            status == StatusCode::NOT_FOUND
                || (!allowed_kind && status == StatusCode::FORBIDDEN)
                || (*path == "/leads/{id}/claim" && status == StatusCode::CONFLICT),
            "POST {concrete} as an agent: {status}"
        );
    }
    for path in CONSOLE_GET.iter().filter(|p| p.starts_with("/admin/") || **p == "/dashboard") {
        let (status, _) = get(s, &w.li, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path} as an agent");
    }
    for path in CONSOLE_POST.iter().filter(|p| p.starts_with("/admin/")) {
        let concrete = path.replace("{id}", "1");
        let (status, _) = post(s, &w.li, &concrete, &[("csrf", &csrf), ("name", "x"), ("role", "admin")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {concrete} as an agent");
    }
    // An export of everything li may see holds no lead of wang's.
    let (status, csv) = get(s, &w.li, "/export?format=csv").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = csv.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    assert!(!ids.is_empty() && !ids.contains(&theirs.as_str()), "{csv}");
    // Nothing changed on wang's lead.
    let (_, lead) = s.get(&format!("/api/v1/leads/{theirs}")).await;
    assert_eq!(lead["status"], "new");
    let (_, admin_view) = get(s, &w.admin, &format!("/leads/{theirs}")).await;
    assert!(!admin_view.contains("mine now"));
}
