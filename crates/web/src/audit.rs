//! The audit log: sign-ins (and failures), user management, merges and dismissals, replays,
//! redeliveries, token rotations. Written after the action succeeded; a failure to write it is
//! logged and does not undo the action (the action's own record — the lead's timeline, the push
//! log — holds it too).

use std::net::IpAddr;

use serde_json::Value;
use xiansuo_domain::User;
use xiansuo_store::{AuditEntry, Store};

use crate::auth::Principal;

/// Who did it.
pub struct Who {
    pub user_id: Option<i64>,
    pub actor: String,
}

impl Who {
    pub fn user(user: &User) -> Who {
        Who { user_id: Some(user.id), actor: user.name.clone() }
    }

    pub fn principal(principal: &Principal) -> Who {
        match principal {
            Principal::AdminToken => Who { user_id: None, actor: "admin token".into() },
            Principal::User(u) => Who::user(u),
        }
    }

    pub fn command_line() -> Who {
        Who { user_id: None, actor: "command line".into() }
    }

    /// Someone who gave this name but is not (yet) known to be that user.
    pub fn claimed(name: &str) -> Who {
        Who { user_id: None, actor: name.to_string() }
    }
}

pub async fn record(
    store: &dyn Store,
    who: Who,
    action: &str,
    target: Option<String>,
    detail: Value,
    ip: Option<IpAddr>,
) {
    let entry = AuditEntry {
        at: xiansuo_domain::now(),
        user_id: who.user_id,
        actor: who.actor,
        action: action.to_string(),
        target,
        detail,
        ip: ip.map(|ip| ip.to_string()),
    };
    if let Err(e) = store.audit(entry).await {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
}

/// An action in the console's words.
pub fn label(action: &str) -> &str {
    match action {
        "sign_in" => "登录",
        "sign_in_failed" => "登录失败",
        "sign_out" => "退出登录",
        "user_added" => "添加用户",
        "user_disabled" => "停用用户",
        "user_enabled" => "启用用户",
        "user_password_reset" => "重置密码",
        "user_api_token_issued" => "签发 API 令牌",
        "lead_merged" => "合并线索",
        "lead_unmerged" => "撤销合并",
        "duplicate_dismissed" => "标记不是同一人",
        "push_replayed" => "重放推送",
        "deliveries_redelivered" => "重新投递",
        "token_rotated" => "更换推送令牌",
        "token_retired" => "停用旧推送令牌",
        other => other,
    }
}
