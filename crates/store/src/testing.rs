//! Test support (feature `test-support`): throw-away PostgreSQL databases.
//!
//! Tests that need PostgreSQL call [`throwaway_postgres`]; it fails (never skips) when no server
//! can be reached. The server is `XIANSUO_TEST_DATABASE_URL`, by default the local one on
//! 127.0.0.1:5432 (`./scripts/test` makes sure it runs).

use tokio_postgres::NoTls;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server tests use.
pub fn test_server_url() -> String {
    std::env::var("XIANSUO_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_string())
}

/// A database created for one test, dropped when this value is dropped.
pub struct TestDatabase {
    pub url: String,
    name: String,
    server: String,
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed for this test and cannot be reached at {url}: {e}\n\
             Run ./scripts/test (it starts or installs PostgreSQL), or set XIANSUO_TEST_DATABASE_URL."
        )
    });
    tokio::spawn(connection);
    client
}

/// Creates an empty database on the test server.
pub async fn throwaway_postgres() -> TestDatabase {
    let server = test_server_url();
    let client = connect(&server).await;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).unwrap_or_default();
    let name = format!("xiansuo_test_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name} on {server}: {e}"));
    let url = url_with_database(&server, &name);
    TestDatabase { url, name, server }
}

/// The same server URL naming another database.
fn url_with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    // postgres://user@host:port/db → replace the path after the authority.
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Dropped from sync code, maybe inside a runtime: a thread of its own does the I/O.
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&server, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_path() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(url_with_database("postgres://u:p@h/db?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(url_with_database("postgresql://h:5432", "x"), "postgresql://h:5432/x");
    }
}
