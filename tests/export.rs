//! Exports (CSV, XLSX), the export log, and who may export what, against the real binary.

mod common;

use std::collections::HashMap;

use common::{ADMIN_TOKEN, Server, card};
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

async fn post(server: &Server, cookie: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let res = client().post(format!("{}{path}", server.base)).header("cookie", cookie).form(form).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// Downloads with a bearer token: status, headers, bytes.
async fn download(server: &Server, token: &str, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = client().get(format!("{}{path}", server.base)).bearer_auth(token).send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.unwrap().to_vec())
}

/// A CSV file's header and records.
fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a UTF-8 BOM first");
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(&bytes[3..]);
    let header = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

fn parse_xlsx(bytes: Vec<u8>) -> (Vec<String>, Vec<Vec<String>>) {
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).expect("a valid XLSX file");
    let sheet = book.sheet_names()[0].clone();
    assert_eq!(sheet, "线索");
    let range = book.worksheet_range(&sheet).unwrap();
    let mut rows = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<String>>());
    let header = rows.next().unwrap();
    (header, rows.collect())
}

async fn seed(server: &Server) -> Vec<Value> {
    let rows = [
        ("x-1", "张伟", "13800000001", "北京市", "百度", "会计培训", "http://a.cn/zt/kj.html?bd_vid=1"),
        ("x-2", "=HYPERLINK(\"http://evil\",\"点我\")", "+8613800000002", "深圳市", "搜狗", "@SUM(A1)", ""),
        ("x-3", "王芳, \"小芳\"", "13900000003", "广州市", "百度", "-1+1", "http://a.cn/zt/kj.html?bd_vid=2"),
    ];
    for (visitor, name, mobile, city, engine, keyword, first_url) in rows {
        let mut c = card(visitor);
        c["name"] = json!(name);
        c["mobile"] = json!(mobile);
        c["city"] = json!(city);
        c["searchEngine"] = json!(engine);
        c["keyword"] = json!(keyword);
        c["firstUrl"] = json!(first_url);
        c["note"] = json!("第一行\n第二行");
        let (status, answer) = server.push_json(&c).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, list) = server.get("/api/v1/leads?per_page=200").await;
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn csv_export_matches_the_api_and_neutralizes_formulas() {
    let server = Server::start().await;
    let leads = seed(&server).await;

    let (status, headers, bytes) = download(
        &server,
        ADMIN_TOKEN,
        "/api/v1/leads/export?format=csv&columns=id,name,mobile,keyword,note,landing,status",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"leads-"));
    let (header, rows) = parse_csv(&bytes);
    assert_eq!(header, ["线索ID", "名称", "手机", "搜索词", "备注", "落地页（不含参数）", "状态"]);
    assert_eq!(rows.len(), leads.len());
    // Newest first, as the inbox; every value as the API has it, formulas neutralized.
    for (row, lead) in rows.iter().zip(&leads) {
        assert_eq!(row[0], lead["id"].to_string());
        let expect = |key: &str| {
            let v = lead[key].as_str().unwrap_or("").to_string();
            if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v }
        };
        assert_eq!(row[1], expect("name"));
        assert_eq!(row[2], expect("mobile"));
        assert_eq!(row[3], expect("keyword"));
        assert_eq!(row[4], "第一行\n第二行", "a line break survives quoting");
        assert_eq!(row[6], "新线索");
    }
    let by_visitor: HashMap<&str, &Vec<String>> =
        leads.iter().map(|l| l["visitor_static_id"].as_str().unwrap()).zip(rows.iter()).collect();
    assert_eq!(by_visitor["x-2"][1], "'=HYPERLINK(\"http://evil\",\"点我\")");
    assert_eq!(by_visitor["x-2"][2], "'+8613800000002");
    assert_eq!(by_visitor["x-2"][3], "'@SUM(A1)");
    assert_eq!(by_visitor["x-3"][3], "'-1+1");
    assert_eq!(by_visitor["x-3"][1], "王芳, \"小芳\"");
    assert_eq!(by_visitor["x-1"][5], "http://a.cn/zt/kj.html", "the landing page without its query");

    // The inbox's filters apply; default columns; bad parameters are 400s naming them.
    let (_, _, bytes) = download(&server, ADMIN_TOKEN, "/api/v1/leads/export?search_engine=%E7%99%BE%E5%BA%A6").await;
    let (header, rows) = parse_csv(&bytes);
    assert_eq!(header[0], "线索ID");
    assert!(header.contains(&"负责人".to_string()) && header.contains(&"收到时间".to_string()));
    assert_eq!(rows.len(), 2);
    let (_, _, bytes) =
        download(&server, ADMIN_TOKEN, "/api/v1/leads/export?landing=http%3A%2F%2Fa.cn%2Fzt%2Fkj.html&columns=id")
            .await;
    assert_eq!(parse_csv(&bytes).1.len(), 2, "landing page filter");
    for (query, word) in [
        ("format=pdf", "format"),
        ("format=", "format"),
        ("columns=id,secret", "columns"),
        ("columns=", "columns"),
        ("columns=id,%20name", "columns"),
        ("status=nope", "status"),
        ("citty=x", "citty"),
    ] {
        let (status, _, body) = download(&server, ADMIN_TOKEN, &format!("/api/v1/leads/export?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(String::from_utf8_lossy(&body).contains(word), "{query}");
    }

    // Every export is in the log, newest first.
    let (status, log) = server.get("/api/v1/exports").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log["total"], 3, "{log}");
    assert_eq!(log["total_exact"], true, "{log}");
    let last = &log["items"][0];
    assert_eq!(last["actor"], "admin token");
    assert_eq!(last["via"], "api");
    assert_eq!(last["format"], "csv");
    assert_eq!(last["rows"], 2);
    assert_eq!(last["completed"], true);
    assert_eq!(last["columns"], json!(["id"]));
    assert_eq!(last["filter"], json!({ "landing": "http://a.cn/zt/kj.html" }));
    assert_eq!(log["items"][2]["rows"], 3);
}

#[tokio::test]
async fn xlsx_export_reads_back_like_the_api() {
    let server = Server::start().await;
    let leads = seed(&server).await;
    let (status, headers, bytes) = download(
        &server,
        ADMIN_TOKEN,
        "/api/v1/leads/export?format=xlsx&columns=id,name,mobile,city,note&sort=received_at",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let (header, rows) = parse_xlsx(bytes);
    assert_eq!(header, ["线索ID", "名称", "手机", "市", "备注"]);
    assert_eq!(rows.len(), 3);
    // Oldest first with sort=received_at.
    for (row, lead) in rows.iter().zip(leads.iter().rev()) {
        assert_eq!(row[0], lead["id"].to_string());
        assert_eq!(row[3], lead["city"].as_str().unwrap());
        assert_eq!(row[4], "第一行\n第二行");
    }
    assert_eq!(rows[1][1], "'=HYPERLINK(\"http://evil\",\"点我\")", "formula neutralized");
    assert_eq!(rows[1][2], "'+8613800000002");
    let (_, log) = server.get("/api/v1/exports").await;
    assert_eq!(log["items"][0]["format"], "xlsx");
    assert_eq!(log["items"][0]["rows"], 3);
}

#[tokio::test]
async fn an_agent_exports_only_what_they_may_see() {
    let server = Server::start().await;
    server.add_user("li", "agent", "li-password-1");
    server.add_user("wang", "agent", "wang-password-1");
    let mut ids = HashMap::new();
    for visitor in ["pool-1", "li-1", "li-2", "wang-1", "wang-2"] {
        let (_, answer) = server.push_json(&card(visitor)).await;
        ids.insert(visitor, answer["leads"][0]["id"].as_i64().unwrap());
    }
    let li = sign_in(&server, "li", "li-password-1").await;
    let wang = sign_in(&server, "wang", "wang-password-1").await;
    for (cookie, visitor) in [(&li, "li-1"), (&li, "li-2"), (&wang, "wang-1"), (&wang, "wang-2")] {
        let (_, html) = page(&server, cookie, &format!("/leads/{}", ids[visitor])).await;
        let (status, _) =
            post(&server, cookie, &format!("/leads/{}/claim", ids[visitor]), &[("csrf", &csrf_of(&html))]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    // li's API token, issued by the admin.
    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let (_, users) = page(&server, &admin, "/admin/users").await;
    let li_id =
        users.split("data-user=\"li\"").nth(1).unwrap().split("/admin/users/").nth(1).unwrap().split('/').next();
    let (_, html) =
        post(&server, &admin, &format!("/admin/users/{}/api-token", li_id.unwrap()), &[("csrf", &csrf_of(&users))])
            .await;
    let token = html.split("id=\"secret-value\">").nth(1).unwrap().split('<').next().unwrap().to_string();

    let allowed: Vec<String> = ["pool-1", "li-1", "li-2"].iter().map(|v| ids[v].to_string()).collect();
    // Whatever the filter, even asking for wang's leads by owner: only li's and the pool.
    let wang_id = {
        let (_, l) = server.get(&format!("/api/v1/leads/{}", ids["wang-1"])).await;
        l["owner_id"].as_i64().unwrap()
    };
    for query in ["", "owner=none", &format!("owner={wang_id}"), "q=wang", "status=new"] {
        for format in ["csv", "xlsx"] {
            let (status, _, bytes) = download(
                &server,
                &token,
                &format!("/api/v1/leads/export?format={format}&columns=id,visitor_static_id&{query}"),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let rows = if format == "csv" { parse_csv(&bytes).1 } else { parse_xlsx(bytes).1 };
            for row in &rows {
                assert!(allowed.contains(&row[0]), "{query} {format}: an agent exported lead {row:?}");
                assert!(!row[1].starts_with("wang"), "{query} {format}");
            }
            if query.is_empty() {
                assert_eq!(rows.len(), 3, "{format}: li's two and the pool");
            }
        }
    }
    // The console's export is the inbox's, with the same visibility.
    let (status, body) = page(&server, &li, "/export?format=csv&columns=id,visitor_static_id").await;
    assert_eq!(status, StatusCode::OK);
    let (_, rows) = parse_csv(body.as_bytes());
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| allowed.contains(&r[0])));
    let (_, body) = page(&server, &li, "/export?format=csv&owner=me&columns=visitor_static_id").await;
    let mut mine: Vec<String> = parse_csv(body.as_bytes()).1.into_iter().map(|r| r[0].clone()).collect();
    mine.sort();
    assert_eq!(mine, ["li-1", "li-2"]);

    // The log names who exported; agents may not read it.
    let (status, _, _) = download(&server, &token, "/api/v1/exports").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, log) = server.get("/api/v1/exports?per_page=200").await;
    assert_eq!(log["total"], 12);
    assert_eq!(log["items"][0]["actor"], "li");
    assert_eq!(log["items"][0]["via"], "console");
    assert_eq!(log["items"][0]["filter"], json!({ "owner": "me" }));
    assert_eq!(log["items"][2]["via"], "api");
    let (status, html) = page(&server, &admin, "/admin/exports").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("导出记录") && html.contains(">li<"), "{html}");
    let (status, _) = page(&server, &li, "/admin/exports").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_command_line_exports_the_database() {
    let server = Server::start().await;
    let leads = seed(&server).await;
    for (format, name) in [("csv", "out.csv"), ("xlsx", "out.xlsx")] {
        let out = server.dir.join(name);
        let result = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
            .args(["export", "--format", format, "--out"])
            .arg(&out)
            .args(["--columns", "id,name,city", "--city", "深圳市"])
            .env("XIANSUO_DATABASE_URL", server.database_url())
            .env_remove("XIANSUO_CONFIG")
            .output()
            .unwrap();
        assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
        assert!(
            String::from_utf8_lossy(&result.stderr).contains("1 leads"),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        let bytes = std::fs::read(&out).unwrap();
        let (header, rows) = if format == "csv" { parse_csv(&bytes) } else { parse_xlsx(bytes) };
        assert_eq!(header, ["线索ID", "名称", "市"]);
        let x2 = leads.iter().find(|l| l["visitor_static_id"] == "x-2").unwrap();
        assert_eq!(rows, [vec![x2["id"].to_string(), "'=HYPERLINK(\"http://evil\",\"点我\")".into(), "深圳市".into()]]);
    }
    let (_, log) = server.get("/api/v1/exports").await;
    assert_eq!(log["items"][0]["via"], "cli");
    assert_eq!(log["items"][0]["actor"], "cli");
    assert_eq!(log["items"][0]["filter"], json!({ "city": "深圳市" }));
}
