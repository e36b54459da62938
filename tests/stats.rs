//! `GET /api/v1/stats` and the console's dashboard, checked against figures computed here from
//! the leads the API lists (the real binary, a database filled by `xiansuo demo`).

mod common;

use std::collections::HashMap;

use common::{Server, card};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn sign_in(server: &Server, name: &str, password: &str) -> String {
    let res = client()
        .post(format!("{}/login", server.base))
        .form(&[("name", name), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in of {name}");
    res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

async fn page(server: &Server, cookie: &str, path: &str) -> (StatusCode, String) {
    let res = client().get(format!("{}{path}", server.base)).header("cookie", cookie).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

fn demo(server: &Server, leads: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["demo", "--leads", leads, "--seed", "11"])
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn all_leads(server: &Server, filter: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let (_, list) = server.get(&format!("/api/v1/leads?per_page=200&page={page}&{filter}")).await;
        let items = list["items"].as_array().unwrap();
        out.extend(items.iter().cloned());
        if items.len() < 200 {
            break;
        }
    }
    out
}

fn valid_mobile(m: &str) -> bool {
    let d: String = m.chars().filter(|c| !matches!(c, ' ' | '-' | '+')).collect();
    let d = d.strip_prefix("86").filter(|d| d.len() == 11).unwrap_or(&d);
    d.len() == 11 && d.starts_with('1') && d.as_bytes()[1] >= b'3' && d.bytes().all(|b| b.is_ascii_digit())
}

fn segment<'a>(stats: &'a Value, dimension: &str, value: &str) -> &'a Value {
    let d = stats["dimensions"].as_array().unwrap().iter().find(|d| d["key"] == dimension).unwrap();
    d["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["value"] == value)
        .unwrap_or_else(|| panic!("{dimension}={value}"))
}

#[tokio::test]
async fn stats_agree_with_the_leads_and_the_dashboard_links_to_them() {
    let server = Server::start().await;
    demo(&server, "400");
    // A label that must be escaped wherever it is drawn.
    let mut c = card("xss-1");
    c["searchEngine"] = json!("<script>alert(1)</script>");
    server.push_json(&c).await;

    let leads = all_leads(&server, "from=2020-01-01").await;
    assert_eq!(leads.len(), 401);
    let (status, stats) = server.get("/api/v1/stats?from=2020-01-01").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["leads"], 401);
    let count = |f: &dyn Fn(&Value) -> bool| leads.iter().filter(|l| f(l)).count() as u64;
    for s in ["new", "contacted", "interested", "won", "invalid"] {
        assert_eq!(stats["by_status"][s], count(&|l| l["status"] == s), "{s}");
    }
    let contact = count(&|l| l["mobile"].as_str().is_some_and(valid_mobile));
    assert_eq!(stats["contact"], contact);
    let won = count(&|l| l["status"] == "won");
    let reached = count(&|l| matches!(l["status"].as_str(), Some("contacted" | "interested" | "won")));
    assert_eq!(stats["funnel"][1]["leads"], reached);
    assert_eq!(stats["funnel"][3]["leads"], won);
    assert_eq!(stats["days"].as_array().unwrap().iter().map(|d| d["leads"].as_u64().unwrap()).sum::<u64>(), 401);
    assert_eq!(stats["hours"].as_array().unwrap().iter().map(|h| h.as_u64().unwrap()).sum::<u64>(), 401);

    // Segments: counts and conversions per engine, city, owner and landing page.
    let mut engines: HashMap<String, (u64, u64)> = HashMap::new();
    for l in &leads {
        let e = engines.entry(l["search_engine"].as_str().unwrap_or("").to_string()).or_default();
        e.0 += 1;
        e.1 += u64::from(l["status"] == "won");
    }
    for (engine, (n, w)) in &engines {
        let s = segment(&stats, "search_engine", engine);
        assert_eq!(s["leads"], *n, "{engine}");
        assert_eq!(s["by_status"]["won"], *w, "{engine}");
        let expected = (*w as f64 / *n as f64 * 10_000.0).round() / 10_000.0;
        assert_eq!(s["won_rate"].as_f64().unwrap(), expected, "{engine}");
    }
    let city = leads[0]["city"].as_str().unwrap();
    assert_eq!(segment(&stats, "city", city)["leads"], count(&|l| l["city"] == city));
    let owner = leads.iter().find_map(|l| l["owner_id"].as_i64()).unwrap();
    assert_eq!(segment(&stats, "owner", &owner.to_string())["leads"], count(&|l| l["owner_id"] == owner));
    assert_eq!(segment(&stats, "owner", "")["leads"], count(&|l| l["owner_id"].is_null()), "the pool");
    let landing = |l: &Value| l["first_url"].as_str().map(|u| u.split(['?', '#']).next().unwrap_or("").to_string());
    let landings = stats["dimensions"].as_array().unwrap().iter().find(|d| d["key"] == "landing").unwrap();
    let page_url = landings["segments"][0]["value"].as_str().unwrap().to_string();
    assert!(page_url.starts_with("http") && !page_url.contains('?'), "{page_url}");
    let s = segment(&stats, "landing", &page_url);
    assert_eq!(s["leads"], count(&|l| landing(l).as_deref() == Some(page_url.as_str())));
    // The landing filter gives the same leads.
    let filtered = all_leads(&server, &format!("from=2020-01-01&landing={}", urlencode(&page_url))).await;
    assert_eq!(s["leads"], filtered.len() as u64);
    let follow = stats["follow_up"].as_array().unwrap();
    assert!(follow.len() >= 3, "{follow:?}");
    assert!(follow.iter().all(|f| f["followed"].as_u64().unwrap() > 0 && f["median_seconds"].as_i64().unwrap() > 0));

    // Filters are the lead list's; without dates, the last 30 days.
    let (_, baidu) = server.get("/api/v1/stats?from=2020-01-01&search_engine=%E7%99%BE%E5%BA%A6").await;
    assert_eq!(baidu["leads"], engines["百度"].0);
    let (_, recent) = server.get("/api/v1/stats").await;
    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let from = (today - chrono::Duration::days(29)).format("%Y-%m-%d").to_string();
    assert!(recent["from"].as_str().unwrap().starts_with(&from), "{}", recent["from"]);
    assert_eq!(recent["leads"], all_leads(&server, &format!("from={from}")).await.len() as u64);
    assert_eq!(recent["days"].as_array().unwrap().len(), 30, "every day of the range");
    let (status, _) = server.get("/api/v1/stats?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The dashboard: charts and tables, links to the inbox filtered to each segment.
    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let (status, html) = page(&server, &admin, "/dashboard?from=2020-01-01").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<svg") && html.contains("id=\"dim-search_engine\""));
    assert!(!html.contains("<script>alert") && html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "escaped");
    assert!(!html.contains("style=") && html.matches("<script").count() == 1, "no inline style or script (CSP)");
    let link = "/?from=2020-01-01&#38;search_engine=%E7%99%BE%E5%BA%A6";
    assert!(html.contains(&format!("href=\"{link}\"")), "a segment links to the inbox");
    let (_, inbox) = page(&server, &admin, &link.replace("&#38;", "&")).await;
    let total = inbox.split("id=\"total\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(total, engines["百度"].0.to_string(), "the inbox holds the segment's leads");
    let (_, inbox) = page(&server, &admin, &format!("/?from=2020-01-01&landing={}", urlencode(&page_url))).await;
    let total = inbox.split("id=\"total\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(total, s["leads"].to_string());
    assert!(inbox.contains("落地页："), "the attribution filter is shown");

    // Admins only.
    server.add_user("li", "agent", "li-password-1");
    let li = sign_in(&server, "li", "li-password-1").await;
    let (status, _) = page(&server, &li, "/dashboard").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every segment of the report, the per-hour ones and the empty ones ("（未填）") included,
/// selects exactly its leads in the lead list, and the dashboard links to it.
#[tokio::test]
async fn every_segment_links_to_exactly_its_leads() {
    let server = Server::start().await;
    demo(&server, "300");
    let (status, stats) = server.get("/api/v1/stats?from=2020-01-01").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let total = |filter: String| {
        let server = &server;
        async move {
            let (status, list) = server.get(&format!("/api/v1/leads?per_page=1&from=2020-01-01&{filter}")).await;
            assert_eq!(status, StatusCode::OK, "{filter}: {list}");
            list["total"].as_u64().unwrap()
        }
    };
    let mut empty_segments = 0;
    for d in stats["dimensions"].as_array().unwrap() {
        let (key, filter) = (d["key"].as_str().unwrap(), d["filter"].as_str().unwrap());
        for s in d["segments"].as_array().unwrap() {
            let value = s["value"].as_str().unwrap();
            let query = match (key, value) {
                ("owner", "") => "owner=none".to_string(),
                (_, "") => format!("empty={filter}"),
                (_, v) => format!("{filter}={}", urlencode(v)),
            };
            empty_segments += usize::from(value.is_empty());
            assert_eq!(total(query.clone()).await, s["leads"].as_u64().unwrap(), "{key}: {query}");
        }
    }
    assert!(empty_segments >= 3, "the demo leaves keyword, bidding word and promotion id empty: {empty_segments}");
    let hours = stats["hours"].as_array().unwrap();
    for (h, n) in hours.iter().enumerate() {
        assert_eq!(total(format!("hour={h}")).await, n.as_u64().unwrap(), "hour {h}");
    }
    // Filters combine: the empty keyword segment of the 百度 report.
    let (_, baidu) = server.get("/api/v1/stats?from=2020-01-01&search_engine=%E7%99%BE%E5%BA%A6").await;
    let none = segment(&baidu, "keyword", "")["leads"].as_u64().unwrap();
    assert_eq!(total("search_engine=%E7%99%BE%E5%BA%A6&empty=keyword".into()).await, none);

    // The dashboard links each of them to the inbox.
    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let (_, html) = page(&server, &admin, "/dashboard?from=2020-01-01").await;
    let busiest = (0..24).max_by_key(|h| hours[*h].as_u64().unwrap()).unwrap();
    let hour_link = format!("/?from=2020-01-01&#38;hour={busiest}");
    assert!(html.contains(&format!("href=\"{hour_link}\"")), "the hour chart links to the inbox");
    let (_, inbox) = page(&server, &admin, &hour_link.replace("&#38;", "&")).await;
    let shown = inbox.split("id=\"total\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(shown, hours[busiest].to_string());
    let empty_link = "/?from=2020-01-01&#38;empty=keyword";
    assert!(html.contains(&format!("href=\"{empty_link}\"")), "the empty keyword segment links to the inbox");
    let (_, inbox) = page(&server, &admin, &empty_link.replace("&#38;", "&")).await;
    let shown = inbox.split("id=\"total\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(shown, segment(&stats, "keyword", "")["leads"].to_string());

    // Validated like the other filters.
    for bad in ["hour=24", "hour=x", "empty=owner", "empty=keyword,nothing"] {
        let (status, body) = server.get(&format!("/api/v1/leads?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let (status, _) = server.get(&format!("/api/v1/stats?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
