//! The Kubernetes envelope every rule shares: `apiVersion`, `kind`, `metadata` and `spec`, and the
//! [`RuleKind`] trait that ties each spec type to its kind and accepted API versions.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// The identity and labels of a rule resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when absent). Rules are mesh-wide, as Aeraki's MetaRouter
    /// is: the namespace names the resource, it does not scope the hosts it applies to.
    pub namespace: String,
    /// `metadata.labels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A validated rule resource of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource<S> {
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// The kind-specific body.
    pub spec: S,
}

impl<S: RuleKind> Resource<S> {
    /// The resource's kind.
    pub fn kind(&self) -> &'static str {
        S::KIND
    }

    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }
}

/// A spec type that is the body of one rule kind.
pub trait RuleKind {
    /// The Kubernetes `kind`.
    const KIND: &'static str;
    /// Every `apiVersion` accepted for the kind (the first is the preferred one).
    const API_VERSIONS: &'static [&'static str];
}

/// `metadata` as written. Server-populated fields (as `kubectl get -o yaml` prints them) are
/// accepted and ignored so exported resources paste in unchanged; anything else is a typo and is
/// rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code, reason = "the ignored fields exist only to be accepted")]
pub(crate) struct RawMeta {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
    uid: Option<IgnoredAny>,
    resource_version: Option<IgnoredAny>,
    generation: Option<IgnoredAny>,
    creation_timestamp: Option<IgnoredAny>,
    deletion_timestamp: Option<IgnoredAny>,
    deletion_grace_period_seconds: Option<IgnoredAny>,
    managed_fields: Option<IgnoredAny>,
    self_link: Option<IgnoredAny>,
    finalizers: Option<IgnoredAny>,
    owner_references: Option<IgnoredAny>,
    generate_name: Option<IgnoredAny>,
}

/// The namespace a resource without one lands in, as with `kubectl apply`.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

impl RawMeta {
    pub(crate) fn into_meta(self) -> ObjectMeta {
        ObjectMeta {
            name: self.name,
            namespace: self
                .namespace
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            labels: self.labels,
            annotations: self.annotations,
        }
    }
}

/// A whole document of one kind, as written. `status` (printed by `kubectl get`) is ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "apiVersion, kind and status are checked before this is parsed"
)]
pub(crate) struct RawDocument<S> {
    api_version: String,
    kind: String,
    pub(crate) metadata: RawMeta,
    pub(crate) spec: S,
    status: Option<IgnoredAny>,
}

/// The fields read from every document before its kind is known. Unknown fields are fine here;
/// the typed parse that follows rejects them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Probe {
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) metadata: Option<ProbeMeta>,
}

/// `metadata` as far as error messages need it.
#[derive(Deserialize)]
pub(crate) struct ProbeMeta {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}
