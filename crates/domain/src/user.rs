//! Console users, their roles, and what each may see.

use crate::Instant;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything: every lead, user management, the push log, exports.
    Admin,
    /// The leads assigned to them and the unassigned pool.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "管理员",
            Role::Agent => "销售",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The password's argon2id hash (PHC string).
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Instant,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this user may see a lead with this owner: admins see every lead, agents their
    /// own and the unassigned pool.
    pub fn may_see(&self, owner_id: Option<i64>) -> bool {
        self.is_admin() || owner_id.is_none_or(|o| o == self.id)
    }
}

/// User names: what sales staff type to sign in.
pub fn valid_user_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 32 {
        return Err("a user name has 1 to 32 characters".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a user name has no spaces".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_see_their_own_and_the_pool() {
        let t = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        let agent = User {
            id: 7,
            name: "a".into(),
            role: Role::Agent,
            password_hash: String::new(),
            disabled: false,
            created_at: t,
        };
        assert!(agent.may_see(None));
        assert!(agent.may_see(Some(7)));
        assert!(!agent.may_see(Some(8)));
        let admin = User { role: Role::Admin, ..agent };
        assert!(admin.may_see(Some(8)));
    }

    #[test]
    fn user_names() {
        assert_eq!(valid_user_name(" 张三 "), Ok("张三"));
        assert!(valid_user_name("a b").is_err());
        assert!(valid_user_name("").is_err());
    }
}
