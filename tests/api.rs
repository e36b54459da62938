//! The read API, /healthz and the OpenAPI document, against the real binary.

mod common;

use common::{Server, card};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn seed(server: &Server) {
    let rows = [
        ("s-1", "张伟", "13800000001", "北京市", "北京市", "百度", "11", "u1", "2026-11-01 10:00:00"),
        ("s-2", "李娜", "13800000002", "广东省", "深圳市", "搜狗", "12", "u2", "2026-11-02 10:00:00"),
        ("s-3", "王芳", "13900000003", "广东省", "广州市", "百度", "11", "u1", "2026-11-03 10:00:00"),
        ("s-4", "Ann Lee", "15000000004", "山西省", "太原市", "360", "", "u3", "2026-11-04 10:00:00"),
    ];
    for (visitor, name, mobile, province, city, engine, tag, user, time) in rows {
        let mut c = card(visitor);
        c["name"] = json!(name);
        c["mobile"] = json!(mobile);
        c["province"] = json!(province);
        c["city"] = json!(city);
        c["searchEngine"] = json!(engine);
        c["ntagId"] = json!(tag);
        c["userId"] = json!(user);
        c["createTime"] = json!(time);
        c["email"] = json!(format!("{visitor}@Example.com"));
        let (status, answer) = server.push_json(&c).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
}

fn visitors(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|l| l["visitor_static_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn filters_search_sort_and_pages() {
    let server = Server::start().await;
    seed(&server).await;

    let (status, all) = server.get("/api/v1/leads").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["total"], 4);
    assert_eq!(all["total_exact"], true);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 50);
    assert_eq!(visitors(&all), ["s-4", "s-3", "s-2", "s-1"], "newest first");

    let cases: &[(&str, &[&str])] = &[
        ("q=%E8%8A%B3", &["s-3"]),                    // 芳: Chinese substring of a name
        ("q=0000000", &["s-4", "s-3", "s-2", "s-1"]), // digits inside mobiles
        ("q=00000002", &["s-2"]),
        ("q=s-4%40example", &["s-4"]),      // e-mail, case-insensitive
        ("q=%E5%A4%AA%E5%8E%9F", &["s-4"]), // 太原, a city
        ("q=100%25", &[]),                  // a literal % matches nothing here
        ("province=%E5%B9%BF%E4%B8%9C%E7%9C%81", &["s-3", "s-2"]),
        ("city=%E6%B7%B1%E5%9C%B3%E5%B8%82", &["s-2"]),
        ("search_engine=%E7%99%BE%E5%BA%A6", &["s-3", "s-1"]),
        ("ntag_id=11", &["s-3", "s-1"]),
        ("user_id=u1&search_engine=%E7%99%BE%E5%BA%A6", &["s-3", "s-1"]),
        ("status=new", &["s-4", "s-3", "s-2", "s-1"]),
        ("source=easyliao&sort=received_at", &["s-1", "s-2", "s-3", "s-4"]),
        ("sort=-create_time", &["s-4", "s-3", "s-2", "s-1"]),
        ("sort=create_time&per_page=2&page=2", &["s-3", "s-4"]),
        ("source=other", &[]),
    ];
    for (query, expected) in cases {
        let (status, page) = server.get(&format!("/api/v1/leads?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(visitors(&page), *expected, "{query}");
    }
    let (_, paged) = server.get("/api/v1/leads?per_page=3&page=2").await;
    assert_eq!(paged["total"], 4);
    assert_eq!(visitors(&paged), ["s-1"]);

    // Every lead was received just now: today's range holds all, a past range none.
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    let (_, t) = server.get(&format!("/api/v1/leads?from={today}&to={today}")).await;
    assert_eq!(t["total"], 4, "a date as `to` includes that day");
    let (_, past) = server.get("/api/v1/leads?to=2020-01-01").await;
    assert_eq!(past["total"], 0);
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_reason() {
    let server = Server::start().await;
    for (query, word) in [
        ("page=0", "page"),
        ("per_page=1000", "per_page"),
        ("per_page=x", "per_page"),
        ("status=lost", "status"),
        ("sort=name", "sort"),
        ("from=yesterday", "from"),
    ] {
        let (status, answer) = server.get(&format!("/api/v1/leads?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer["msg"].as_str().unwrap().starts_with(word), "{query}: {answer}");
    }
    let (status, _) = server.get("/api/v1/pushes?outcome=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server.get("/api/v1/leads/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/api/v1/leads/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_api_needs_the_admin_token() {
    let server = Server::start().await;
    seed(&server).await;
    for path in ["/api/v1/leads", "/api/v1/leads/1", "/api/v1/pushes"] {
        let url = format!("{}{path}", server.base);
        let none = server.client.get(&url).send().await.unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        let wrong = server.client.get(&url).bearer_auth("not-the-admin-token").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        let push_token = server.client.get(&url).bearer_auth(common::PUSH_TOKEN).send().await.unwrap();
        assert_eq!(push_token.status(), StatusCode::UNAUTHORIZED, "a push token is no API token: {path}");
    }
    let replay = server.client.post(format!("{}/api/v1/pushes/1/replay", server.base)).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_and_a_truthful_openapi_document() {
    let server = Server::start().await;
    seed(&server).await;
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 15);
    // Every documented operation exists on the server: it answers something other than the
    // router's 404 / 405.
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{source}", "easyliao").replace("{id}", "1");
            let is_push = path.starts_with("/push/");
            let url = if is_push {
                format!("{}{concrete}?token={}", server.base, common::PUSH_TOKEN)
            } else {
                format!("{}{concrete}", server.base)
            };
            let req = server.client.request(method.to_uppercase().parse().unwrap(), url);
            let req = if is_push { req.body(card("doc").to_string()) } else { req.bearer_auth(common::ADMIN_TOKEN) };
            let res = req.send().await.unwrap();
            // Merges are recorded under a person: the installation's admin token gets 403.
            let person_only = ["/merge", "/unmerge", "/dismiss-duplicate"].iter().any(|p| path.ends_with(p));
            if person_only {
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
            } else {
                assert!(res.status().is_success(), "{method} {path} answered {}", res.status());
            }
        }
    }
    // Every lead key the API returns is documented, and every documented required key is there.
    let (_, lead) = server.get("/api/v1/leads/1").await;
    let schema = &doc["components"]["schemas"]["LeadDetail"];
    let props = schema["properties"].as_object().unwrap();
    for key in lead.as_object().unwrap().keys() {
        assert!(props.contains_key(key), "undocumented key {key}");
    }
    for key in schema["required"].as_array().unwrap() {
        assert!(lead.get(key.as_str().unwrap()).is_some(), "documented key {key} missing");
    }
    let unknown = server.client.get(format!("{}/nope", server.base)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
