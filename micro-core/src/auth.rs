//! Identity and access: accounts, access/refresh tokens, inspection, and rules that grant or
//! deny access to resources by scope and priority (go-micro's `auth.Auth` and `auth.Rules`).

use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// An identity: a user or a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Unique id.
    pub id: String,
    /// `user` or `service`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Who issued it.
    pub issuer: String,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Scopes the account holds (rules match on them).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Secret used to get tokens (only returned by `generate`).
    #[serde(default)]
    pub secret: String,
}

/// Tokens issued to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Short-lived token sent with requests.
    pub access_token: String,
    /// Long-lived token traded for new access tokens.
    pub refresh_token: String,
    /// When it was issued.
    pub created: SystemTime,
    /// When the access token stops working.
    pub expiry: SystemTime,
}

/// Something access is asked for, e.g. service `greeter`, endpoint `Greeter.Hello`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Resource name (`greeter`), or `*`.
    pub name: String,
    /// Resource type (`service`), or `*`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Endpoint (`Greeter.Hello`), or `*`.
    #[serde(default)]
    pub endpoint: String,
}

/// Whether a rule lets the request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Access {
    /// Allow.
    Granted,
    /// Refuse.
    Denied,
}

/// Grants or denies a scope access to a resource; higher priority is checked first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Scope an account needs: `""` = anyone (even without an account), `*` = any account.
    pub scope: String,
    /// What it applies to (`*` matches anything in each field).
    pub resource: Resource,
    /// Grant or deny.
    pub access: Access,
    /// Higher is checked first.
    #[serde(default)]
    pub priority: i32,
}

option_struct! {
    /// Options of [`Auth::generate`].
    #[derive(Debug, Clone, Default)]
    pub struct GenerateOptions {
        /// Metadata for the account.
        pub metadata: BTreeMap<String, String>,
        /// Scopes for the account.
        pub scopes: Vec<String>,
        /// `user` or `service` (default `user`).
        pub type_: Option<String>,
        /// Secret to set; generated when `None`.
        pub secret: Option<String>,
    }
}

/// How to get a token: with an account's credentials or a refresh token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenRequest {
    /// Account id and secret.
    Credentials {
        /// Account id.
        id: String,
        /// Account secret.
        secret: String,
    },
    /// A refresh token from an earlier token.
    Refresh(String),
}

/// An identity provider.
#[async_trait]
pub trait Auth: Send + Sync + 'static {
    /// Plugin name, e.g. `jwt`.
    fn name(&self) -> &str;
    /// Creates an account.
    async fn generate(&self, id: &str, options: GenerateOptions) -> Result<Account>;
    /// The account an access token belongs to; 401 when invalid or expired.
    async fn inspect(&self, access_token: &str) -> Result<Account>;
    /// Issues tokens valid for `expiry`.
    async fn token(&self, request: TokenRequest, expiry: Duration) -> Result<Token>;
    /// Adds a rule.
    async fn grant(&self, rule: Rule) -> Result<()>;
    /// Removes a rule by id.
    async fn revoke(&self, rule_id: &str) -> Result<()>;
    /// Every rule.
    async fn rules(&self) -> Result<Vec<Rule>>;
}

fn field_matches(rule: &str, asked: &str) -> bool {
    rule == "*" || rule == asked
}

fn endpoint_matches(rule: &str, asked: &str) -> bool {
    if rule == "*" || rule == asked {
        return true;
    }
    // `Greeter.*` covers every endpoint of Greeter.
    rule.strip_suffix('*')
        .is_some_and(|prefix| asked.starts_with(prefix))
}

/// Decides whether `account` may access `resource` under `rules`: the matching rule with the
/// highest priority wins (a deny beats a grant of equal priority); no matching rule is a
/// 403 (or 401 without an account).
pub fn verify(rules: &[Rule], account: Option<&Account>, resource: &Resource) -> Result<()> {
    let mut matching: Vec<&Rule> = rules
        .iter()
        .filter(|r| {
            field_matches(&r.resource.type_, &resource.type_)
                && field_matches(&r.resource.name, &resource.name)
                && endpoint_matches(&r.resource.endpoint, &resource.endpoint)
        })
        .filter(|r| match (r.scope.as_str(), account) {
            ("", _) => true,
            (_, None) => false,
            ("*", Some(_)) => true,
            (scope, Some(acc)) => acc.scopes.iter().any(|s| s == scope),
        })
        .collect();
    matching.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| (a.access == Access::Granted).cmp(&(b.access == Access::Granted)))
    });
    match matching.first().map(|r| r.access) {
        Some(Access::Granted) => Ok(()),
        _ if account.is_none() => Err(Error::unauthorized(
            "go.micro.auth",
            format!(
                "no account given for {} {} {}: send an access token",
                resource.type_, resource.name, resource.endpoint
            ),
        )),
        _ => Err(Error::forbidden(
            "go.micro.auth",
            format!(
                "access to {} {} {} denied",
                resource.type_, resource.name, resource.endpoint
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, scope: &str, endpoint: &str, access: Access, priority: i32) -> Rule {
        Rule {
            id: id.into(),
            scope: scope.into(),
            resource: Resource {
                name: "greeter".into(),
                type_: "service".into(),
                endpoint: endpoint.into(),
            },
            access,
            priority,
        }
    }

    fn res(endpoint: &str) -> Resource {
        Resource {
            name: "greeter".into(),
            type_: "service".into(),
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn priority_and_scope_decide() {
        let admin = Account {
            id: "a".into(),
            scopes: vec!["admin".into()],
            ..Default::default()
        };
        let user = Account {
            id: "u".into(),
            ..Default::default()
        };
        let rules = vec![
            rule("public", "", "Greeter.Hello", Access::Granted, 0),
            rule("any", "*", "Greeter.*", Access::Granted, 0),
            rule("deny-secret", "*", "Greeter.Secret", Access::Denied, 1),
            rule(
                "admin-secret",
                "admin",
                "Greeter.Secret",
                Access::Granted,
                2,
            ),
        ];
        assert!(verify(&rules, None, &res("Greeter.Hello")).is_ok());
        assert_eq!(
            verify(&rules, None, &res("Greeter.Other"))
                .unwrap_err()
                .code,
            401
        );
        assert!(verify(&rules, Some(&user), &res("Greeter.Other")).is_ok());
        assert_eq!(
            verify(&rules, Some(&user), &res("Greeter.Secret"))
                .unwrap_err()
                .code,
            403
        );
        assert!(verify(&rules, Some(&admin), &res("Greeter.Secret")).is_ok());
    }

    #[test]
    fn deny_wins_a_tie() {
        let rules = vec![
            rule("g", "", "*", Access::Granted, 5),
            rule("d", "", "*", Access::Denied, 5),
        ];
        let user = Account::default();
        assert!(verify(&rules, Some(&user), &res("Greeter.Hello")).is_err());
    }
}
