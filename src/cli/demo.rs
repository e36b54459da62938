//! `xiansuo demo --leads N [--seed S]`: fills the configured database with realistic leads, so
//! that a new installation shows a living console and reports. The cards come from the
//! benchmark's generator (names, cities, keywords, landing pages, transcripts), go through the
//! push decoder and the store like pushes, and are spread over the last six months; a few
//! generated agents claim or are assigned most of them and work them through the statuses, with
//! notes. The same seed gives the same leads and the same follow-up.

use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use xiansuo_bench::cards::{Cards, Rng};
use xiansuo_domain::{Instant, LeadStatus, Role, User};
use xiansuo_push::{SourceRules, decode_push};
use xiansuo_store::{Actor, LeadUpdate, NewPush, PushResult, Store, StoreError};

/// The agents the demo creates (when absent).
const AGENTS: &[&str] = &["李婷", "王晓雪", "刘洋", "陈静"];
/// How far back the leads go.
const DAYS: i64 = 182;
const IN_FLIGHT: usize = 32;

const NOTES: &[&str] = &[
    "已电话沟通，想了解周末班",
    "加了微信，发了课程资料",
    "价格有点高，等优惠活动",
    "约了周六来校区试听",
    "家长决定，下周回复",
    "已报名，交了定金",
    "电话没接，明天再打",
];
const INVALID_REASONS: &[&str] = &["空号", "同行咨询", "重复线索", "无意向"];

/// Creates a user unless one of that name exists; returns it and, when created, its password.
async fn user(store: &dyn Store, name: &str, role: Role) -> Result<(User, Option<String>), String> {
    if let Some(u) = store.user_by_name(name).await.map_err(|e| e.to_string())? {
        return Ok((u, None));
    }
    let password = xiansuo_web::security::generate_password()?;
    let for_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || xiansuo_web::security::hash_password(&for_hash))
        .await
        .map_err(|e| e.to_string())??;
    let u = store.create_user(name, role, &hash).await.map_err(|e| format!("creating the user {name}: {e}"))?;
    Ok((u, Some(password)))
}

/// When the lead arrived: a day of the last six months (more in recent ones), in working hours
/// mostly (China time).
fn arrival(rng: &mut Rng, now: Instant) -> Instant {
    let days_ago = {
        let a = rng.below(DAYS as u64) as i64;
        let b = rng.below(DAYS as u64) as i64;
        a.min(b)
    };
    let hour =
        [8, 9, 10, 10, 11, 11, 13, 14, 14, 15, 15, 16, 17, 19, 20, 20, 21, 21, 22, 23, 1][rng.below(21) as usize];
    let midnight_china = {
        let day = (now + chrono::Duration::hours(8)).date_naive() - chrono::Duration::days(days_ago);
        day.and_hms_opt(0, 0, 0).map(|t| t.and_utc() - chrono::Duration::hours(8)).unwrap_or(now)
    };
    let t = midnight_china + chrono::Duration::seconds(hour * 3600 + rng.below(3600) as i64);
    t.min(now - chrono::Duration::minutes(1))
}

/// The card of visitor `i`, decoded, moved in time so that it arrives at `at`.
fn card(cards: &Cards, rules: &SourceRules, i: u64, at: Instant) -> Result<(String, xiansuo_domain::Card), String> {
    let body = cards.card(i, 0, None);
    let decoded = decode_push(body.as_bytes(), Some("application/json"), rules)
        .map_err(|e| format!("the generated card {i} does not decode: {e}"))?;
    let mut card = decoded
        .cards
        .into_iter()
        .find(|c| !c.ignored)
        .map(|c| c.card)
        .ok_or_else(|| format!("the source's accept_types ignore the generated card {i}"))?;
    let shift = card.times.get("create_time").map(|t| at - *t).unwrap_or_default();
    for t in card.times.values_mut() {
        *t += shift;
    }
    for m in &mut card.messages {
        if let Some(t) = m.create_time.as_mut() {
            *t += shift;
        }
    }
    Ok((body, card))
}

/// The follow-up of a new lead: who takes it, and how far it gets.
async fn follow_up(
    store: &dyn Store,
    rng: &mut Rng,
    lead: i64,
    received: Instant,
    admin: &User,
    agents: &[User],
    now: Instant,
) -> Result<(), StoreError> {
    let age_days = (now - received).num_days();
    // Recent leads are more often still in the pool.
    if rng.below(100) < if age_days < 3 { 45 } else { 8 } {
        return Ok(());
    }
    let agent = &agents[rng.below(agents.len() as u64) as usize];
    let mut at = received + chrono::Duration::minutes(2 + rng.below(240) as i64);
    let step = |at: Instant, rng: &mut Rng, max_minutes: u64| {
        (at + chrono::Duration::minutes(5 + rng.below(max_minutes) as i64)).min(now)
    };
    if rng.below(2) == 0 {
        store.update_lead(lead, Actor::of(admin), LeadUpdate::Assign { to: Some(agent.id) }, at.min(now)).await?;
    } else {
        store.update_lead(lead, Actor::of(agent), LeadUpdate::Claim, at.min(now)).await?;
    }
    let by = Actor::of(agent);
    let status = |to| LeadUpdate::Status { to, reason: None };
    at = step(at, rng, 600);
    if rng.below(100) < 12 {
        let reason = INVALID_REASONS[rng.below(INVALID_REASONS.len() as u64) as usize].to_string();
        store.update_lead(lead, by, LeadUpdate::Status { to: LeadStatus::Invalid, reason: Some(reason) }, at).await?;
        return Ok(());
    }
    if rng.below(100) < 25 && age_days < 10 {
        return Ok(());
    }
    store.update_lead(lead, by, status(LeadStatus::Contacted), at).await?;
    if rng.below(100) < 50 {
        at = step(at, rng, 300);
        let note = NOTES[rng.below(NOTES.len() as u64) as usize].to_string();
        store.update_lead(lead, by, LeadUpdate::Note { text: note }, at).await?;
    }
    if rng.below(100) < 40 {
        at = step(at, rng, 3 * 1440);
        store.update_lead(lead, by, status(LeadStatus::Interested), at).await?;
        if rng.below(100) < 35 {
            at = step(at, rng, 10 * 1440);
            store.update_lead(lead, by, status(LeadStatus::Won), at).await?;
        }
    }
    Ok(())
}

pub fn run(leads: u64, seed: u64, config_file: Option<&std::path::Path>) -> Result<ExitCode, String> {
    super::runtime()?.block_on(async {
        let (config, store) = super::configured_store(config_file).await?;
        xiansuo_web::startup::mark_new_database(store.as_ref()).await.map_err(|e| e.to_string())?;
        let source = config.sources.values().next().ok_or("no source is configured")?;
        let (name, rules) = (source.name.clone(), Arc::new(source.rules.clone()));

        let admin = match store.users().await.map_err(|e| e.to_string())?.into_iter().find(|u| u.is_admin()) {
            Some(a) => a,
            None => {
                let (a, password) = user(store.as_ref(), "admin", Role::Admin).await?;
                if let Some(p) = password {
                    println!("created the admin \"admin\" with the password {p}");
                }
                a
            }
        };
        let mut agents = Vec::new();
        for agent in AGENTS {
            let (u, password) = user(store.as_ref(), agent, Role::Agent).await?;
            if let Some(p) = password {
                println!("created the agent \"{agent}\" with the password {p}");
            }
            agents.push(u);
        }
        let (admin, agents) = (Arc::new(admin), Arc::new(agents));
        let cards = Arc::new(Cards::new(seed));
        let now = xiansuo_domain::now();
        let bar = indicatif::ProgressBar::new(leads);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} leads {elapsed_precise} (eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let results: Vec<Result<bool, String>> = futures_util::stream::iter(0..leads)
            .map(|i| {
                let (store, rules, cards, admin, agents, name, bar) = (
                    Arc::clone(&store),
                    Arc::clone(&rules),
                    Arc::clone(&cards),
                    Arc::clone(&admin),
                    Arc::clone(&agents),
                    name.clone(),
                    bar.clone(),
                );
                async move {
                    let mut rng = Rng::new(seed, i, 0xDE30);
                    let at = arrival(&mut rng, now);
                    let (body, card) = card(&cards, &rules, i, at)?;
                    let push = NewPush {
                        source: name,
                        received_at: at,
                        content_type: Some("application/json".into()),
                        body: body.into_bytes(),
                        query: None,
                        result: PushResult::Cards { cards: vec![card], ignored: 0 },
                    };
                    let recorded = loop {
                        match store.record_push(push.clone()).await {
                            Ok(r) => break r,
                            Err(StoreError::Overloaded) => {
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await
                            }
                            Err(e) => return Err(format!("storing lead {i}: {e}")),
                        }
                    };
                    bar.inc(1);
                    match recorded.leads.first() {
                        // A lead made by an earlier run with this seed keeps its follow-up.
                        Some(l) if l.created => {
                            follow_up(store.as_ref(), &mut rng, l.id, at, &admin, &agents, now)
                                .await
                                .map_err(|e| format!("following up lead {}: {e}", l.id))?;
                            Ok(true)
                        }
                        _ => Ok(false),
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        bar.finish_and_clear();
        let created = results.into_iter().collect::<Result<Vec<bool>, String>>()?.into_iter().filter(|c| *c).count();
        println!(
            "{}: {leads} demo leads (seed {seed}) over the last {DAYS} days, {created} new; agents: {}",
            config.database_url,
            AGENTS.join(", ")
        );
        Ok(ExitCode::SUCCESS)
    })
}
