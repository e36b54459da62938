//! `xiansuo copy --from URL --to URL`.

use std::process::ExitCode;

use xiansuo_config::{Config, DatabaseUrl};
use xiansuo_store::copy::{RANGE, tables};

pub fn run(from: &str, to: &str) -> Result<ExitCode, String> {
    let from = DatabaseUrl::parse(from).map_err(|e| format!("--from: {e}"))?;
    let to = DatabaseUrl::parse(to).map_err(|e| format!("--to: {e}"))?;
    if from == to {
        return Err("--from and --to name the same database".into());
    }
    // Pool and queue bounds: the defaults (no file, no environment).
    let config = Config::from_toml("", "", |_| None).map_err(|e| e.to_string())?;
    super::runtime()?.block_on(async {
        let open = |url: &DatabaseUrl| {
            let url = url.clone();
            let config = config.clone();
            async move { xiansuo_web::startup::open_store(&url, &config).await.map_err(|e| format!("{url}: {e}")) }
        };
        let source = open(&from).await?;
        let target = open(&to).await?;
        let err = |e: xiansuo_store::StoreError| e.to_string();

        for table in tables() {
            let (rows, _) = target.table_stats(&table).await.map_err(err)?;
            if rows > 0 {
                return Err(format!(
                    "{to} is not empty (its table {} holds {rows} rows): copy needs an empty database",
                    table.name
                ));
            }
        }
        for table in tables() {
            let (total, max_key) = source.table_stats(&table).await.map_err(err)?;
            let mut copied = 0i64;
            match (table.range_key, max_key) {
                (Some(_), Some(max)) => {
                    let mut lo = 0;
                    while lo <= max {
                        let rows = source.copy_out(&table, lo, lo + RANGE).await.map_err(err)?;
                        copied += rows.len() as i64;
                        if !rows.is_empty() {
                            target.copy_in(&table, rows).await.map_err(err)?;
                        }
                        lo += RANGE;
                    }
                }
                (Some(_), None) => {}
                (None, _) => {
                    let rows = source.copy_out(&table, 0, 0).await.map_err(err)?;
                    copied += rows.len() as i64;
                    target.copy_in(&table, rows).await.map_err(err)?;
                }
            }
            println!("{:<12} {copied} of {total} rows", table.name);
        }
        target.after_copy().await.map_err(err)?;
        // The copied leads' report figures, pending since their triggers ran, go into the
        // per-day table now rather than at the next write a server makes.
        target.fold_report_days().await.map_err(err)?;

        let mut mismatches = 0;
        println!("verifying: table, rows in {from}, rows in {to}");
        for table in tables() {
            let (a, _) = source.table_stats(&table).await.map_err(err)?;
            let (b, _) = target.table_stats(&table).await.map_err(err)?;
            let verdict = if a == b { "ok" } else { "MISMATCH" };
            if a != b {
                mismatches += 1;
            }
            println!("{:<12} {a:>10} {b:>10}  {verdict}", table.name);
        }
        if mismatches > 0 {
            eprintln!("xiansuo: the copy does not match the source in {mismatches} tables");
            return Ok(ExitCode::from(1));
        }
        println!("copied and verified");
        Ok(ExitCode::SUCCESS)
    })
}
