//! Why a rules file was rejected: one [`RuleError`] per problem, each naming the file, the
//! document, the resource and the field, and the [`RulesError`] that carries them all.

use std::fmt;

/// The resource a problem was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// `DestinationRule`, `VirtualService`, `MetaRouter` or `TrafficIsolation` (or whatever the
    /// document claimed, when the kind itself is the problem).
    pub kind: String,
    /// Kubernetes namespace (`default` when the document gives none).
    pub namespace: String,
    /// `metadata.name` (`?` when the document gives none).
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One problem in one document.
///
/// Displays as `rules.yaml: document 3 (VirtualService default/greeter): http[0].route[1].weight:
/// weights sum to 90, expected 100`. Field paths are relative to `spec` (top-level fields such as
/// `metadata.name` are spelled out); YAML errors add the parser's line and column to the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// The rules file as it was named.
    pub file: String,
    /// 1-based index of the YAML document in the file.
    pub document: usize,
    /// The resource, once its kind is known.
    pub resource: Option<ResourceRef>,
    /// Field path (`http[0].route[1].weight`), empty for the document as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)?;
        if let Some(resource) = &self.resource {
            write!(f, " ({resource})")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a rules file could not be used. The whole file is rejected: the previous rule set stays
/// in force.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {file}: {source}")]
    Read {
        /// The rules file as it was named.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One or more documents are invalid; every problem found is listed, in document order.
    #[error("{}", join(errors))]
    Invalid {
        /// The problems.
        errors: Vec<RuleError>,
    },
}

fn join(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl RulesError {
    /// The individual problems (empty for a read error).
    pub fn problems(&self) -> &[RuleError] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { errors } => errors,
        }
    }
}

/// Collects `(path, message)` problems while one resource is validated; the loader adds the file,
/// document and resource.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    found: Vec<(String, String)>,
}

impl Issues {
    /// Records a problem at `path`.
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push((path.into(), message.into()));
    }

    /// Records `result`'s error, if any, at `path`.
    pub(crate) fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(path, message);
        }
    }

    /// The problems, in the order found.
    pub(crate) fn into_vec(self) -> Vec<(String, String)> {
        self.found
    }
}

/// Joins a field path and a field name (`a` + `b` = `a.b`; `""` + `b` = `b`).
pub(crate) fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Joins a field path and a list index (`a` + 2 = `a[2]`).
pub(crate) fn index(prefix: &str, i: usize) -> String {
    format!("{prefix}[{i}]")
}
