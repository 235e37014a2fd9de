//! Allow/deny globs that keep large registries cheap: only admitted services enter the model.
//!
//! A value is admitted when it matches some `allow` glob (or `allow` is empty) and no `deny` glob.
//! Globs know `*` (any run of characters) and `?` (one character).

use serde::Deserialize;

use crate::model::provider::{Provider, RegistryScope, ServiceRef};

/// Allow and deny globs for one attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobList {
    /// Admit only values matching one of these (empty: admit all).
    pub allow: Vec<String>,
    /// Never admit values matching one of these.
    pub deny: Vec<String>,
}

impl GlobList {
    /// Whether `value` passes.
    pub fn admits(&self, value: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|g| glob_match(g, value)))
            && !self.deny.iter().any(|g| glob_match(g, value))
    }
}

/// The `filter:` section of the bridge config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// Dubbo interface or plain service name.
    pub services: GlobList,
    /// Nacos namespace id.
    pub namespaces: GlobList,
    /// Dubbo service group and Nacos group.
    pub groups: GlobList,
}

impl Filter {
    /// Whether a provider's service is admitted.
    pub fn admits(&self, provider: &Provider) -> bool {
        let (name, dubbo_group) = match &provider.service {
            ServiceRef::Dubbo {
                interface, group, ..
            } => (interface.as_str(), group.as_deref()),
            ServiceRef::Named(name) => (name.as_str(), None),
        };
        if !self.services.admits(name) {
            return false;
        }
        if let Some(group) = dubbo_group
            && !self.groups.admits(group)
        {
            return false;
        }
        match &provider.scope {
            RegistryScope::Global => true,
            RegistryScope::Nacos { namespace, group } => {
                self.namespaces.admits(namespace) && self.groups.admits(group)
            }
        }
    }
}

/// Matches `value` against a glob with `*` and `?`, iteratively (no recursion, linear memory).
pub fn glob_match(glob: &str, value: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = value.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("com.acme.*", "com.acme.OrderService"));
        assert!(glob_match("*Service", "com.acme.OrderService"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("com.acme.*", "org.acme.X"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let list = GlobList {
            allow: vec!["com.*".into()],
            deny: vec!["*.internal.*".into()],
        };
        assert!(list.admits("com.acme.Api"));
        assert!(!list.admits("com.internal.Api"));
        assert!(!list.admits("org.acme.Api"));
        assert!(GlobList::default().admits("anything"));
    }
}
