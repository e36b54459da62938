//! `xiansuo copy`: an SQLite installation moved to PostgreSQL (and back) reads the same.

mod common;

use std::process::Command;

use common::{Backend, Options, Server, card};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn copy(from: &str, to: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xiansuo")).args(["copy", "--from", from, "--to", to]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn token_in(banner: &str, prefix: &str) -> String {
    let start = banner.find(prefix).unwrap() + prefix.len();
    banner[start..].chars().take_while(char::is_ascii_hexdigit).collect()
}

/// Everything the API says about an installation.
async fn everything(server: &Server, admin: &str) -> Vec<Value> {
    let get = |path: String| {
        let req = server.client.get(format!("{}{path}", server.base)).bearer_auth(admin);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let leads = get("/api/v1/leads?per_page=200&sort=received_at".into()).await;
    let mut all = vec![leads.clone(), get("/api/v1/pushes?per_page=200".into()).await];
    for lead in leads["items"].as_array().unwrap() {
        all.push(get(format!("/api/v1/leads/{}", lead["id"])).await);
    }
    all
}

#[tokio::test]
async fn an_sqlite_installation_moves_to_postgres_and_back() {
    let mut sqlite =
        Server::start_with(Options { backend: Some(Backend::Sqlite), fixed_tokens: false, ..Default::default() }).await;
    let push_token = token_in(&sqlite.banner, "?token=");
    let admin = token_in(&sqlite.banner, "Bearer ");
    let url = format!("{}/push/easyliao?token={push_token}", sqlite.base);
    for body in [
        card("c-1").to_string(),
        card("c-2").to_string(),
        card("c-1").to_string(),
        json!({"visitorStaticId": "c-3", "companyId": "1", "chatId": "2", "门店": "一号店", "note": "第一行\n第二行"})
            .to_string(),
        "{\"broken\": ".to_string(),
    ] {
        sqlite.client.post(&url).body(body).send().await.unwrap();
    }
    let (gbk, _, _) =
        encoding_rs::GBK.encode("{\"visitorStaticId\":\"c-4\",\"companyId\":\"1\",\"chatId\":\"3\",\"name\":\"张三\"}");
    let res = sqlite
        .client
        .post(&url)
        .header("content-type", "application/json; charset=gbk")
        .body(gbk.into_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let before = everything(&sqlite, &admin).await;
    assert_eq!(before[0]["total"], 4);
    sqlite.stop();

    let sqlite_url = format!("sqlite://{}", sqlite.dir.join("data/xiansuo.db").display());
    {
        // A timeline event to copy (the console makes these; here the store does).
        let store = xiansuo_store::sqlite::SqliteStore::open(&sqlite.dir.join("data/xiansuo.db"), 16).unwrap();
        use xiansuo_store::Store;
        let admin = xiansuo_store::Actor { user_id: 1, admin: true };
        store.update_lead(1, admin, xiansuo_store::LeadUpdate::Claim, xiansuo_domain::now()).await.unwrap();
    }
    // What the API said before, with that claim.
    let mut before = before;
    before[0]["items"][0]["owner_id"] = json!(1);
    before[2]["owner_id"] = json!(1);
    // Lead 1 shows as a duplicate of lead 2 (the same mobile), with its owner too.
    for detail in before.iter_mut().skip(2) {
        for dup in detail["duplicates"].as_array_mut().into_iter().flatten() {
            if dup["lead"]["id"] == 1 {
                dup["lead"]["owner_id"] = json!(1);
            }
        }
    }
    let postgres = Backend::postgres().await;
    let Backend::Postgres(db) = &postgres else { unreachable!() };
    let (ok, out) = copy(&sqlite_url, &db.url);
    assert!(ok, "{out}");
    assert!(out.contains("copied and verified"), "{out}");
    assert!(out.contains("leads") && out.contains("4 of 4 rows"), "{out}");

    // The same installation on PostgreSQL: same tokens (copied settings), same answers.
    let pg_server =
        Server::start_with(Options { backend: Some(postgres.clone()), fixed_tokens: false, ..Default::default() })
            .await;
    assert_eq!(token_in(&pg_server.banner, "?token="), push_token);
    let after = everything(&pg_server, &admin).await;
    // Lead 1's timeline now holds that claim (the API shows the timeline since issue #11).
    let claim = &after[2]["timeline"];
    assert_eq!(claim.as_array().map(Vec::len), Some(1), "{claim}");
    assert_eq!(
        (&claim[0]["kind"], &claim[0]["user_id"], &claim[0]["detail"]["claimed"]),
        (&json!("owner"), &json!(1), &json!(true))
    );
    before[2]["timeline"] = claim.clone();
    assert_eq!(after, before);

    // New rows continue after the copied ids.
    let res = pg_server
        .client
        .post(format!("{}/push/easyliao?token={push_token}", pg_server.base))
        .body(card("c-5").to_string())
        .send()
        .await
        .unwrap();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["leads"][0]["id"], 5, "{answer}");

    // Every serial id continues after the copied ones: users and timeline events too.
    let store = xiansuo_store::postgres::PostgresStore::open(&db.url, 2, 1, 16).await.unwrap();
    use xiansuo_store::Store;
    let user =
        store.create_user("after-copy", xiansuo_domain::Role::Agent, "hash").await.expect("a new user after the copy");
    assert!(user.id > 1);
    // The dashboard's per-day figures of the copied leads (their triggers left them pending; the
    // copy folds them) agree with the leads themselves.
    let every = xiansuo_store::LeadQuery { per_page: 100, page: 1, ..Default::default() };
    let (days, scanned) =
        (store.lead_stats(&every, 10).await.unwrap(), store.lead_stats_scanned(&every, 10).await.unwrap());
    assert_eq!((days.counts.total, &days), (5, &scanned));
    let admin = xiansuo_store::Actor { user_id: 1, admin: true };
    for _ in 0..2 {
        store
            .update_lead(
                1,
                admin,
                xiansuo_store::LeadUpdate::Note { text: "after the copy".into() },
                xiansuo_domain::now(),
            )
            .await
            .expect("a new timeline event after the copy");
    }
    drop(store);

    // A non-empty target is refused.
    let (ok, out) = copy(&sqlite_url, &db.url);
    assert!(!ok && out.contains("not empty"), "{out}");

    // And back to a new SQLite file.
    let back = tempfile::tempdir().unwrap();
    let back_url = format!("sqlite://{}", back.path().join("back.db").display());
    let (ok, out) = copy(&db.url, &back_url);
    assert!(ok, "{out}");
    let db_rows: i64 = rusqlite::Connection::open(back.path().join("back.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM leads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(db_rows, 5);
}
