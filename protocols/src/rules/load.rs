//! Turns the text of a multi-document rules file into a [`RuleSet`]: splits it into YAML
//! documents, dispatches each on `apiVersion`/`kind`, parses it strictly, validates it, then runs
//! the checks that span resources (duplicate names and hosts, routes naming undefined subsets).
//!
//! All-or-nothing: every problem in every document is collected and any problem rejects the whole
//! file, so a half-applied file can never reach the proxies.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::de::DeserializeOwned;

use super::advice::{IsolationDocument, isolation_warnings};
use super::common::{Destination, host_specificity};
use super::destination_rule::DestinationRuleSpec;
use super::error::{Issues, ResourceRef, RuleError, RulesError, field, index};
use super::isolation::TrafficIsolationSpec;
use super::meta_router::MetaRouterSpec;
use super::resource::{DEFAULT_NAMESPACE, Probe, RawDocument, Resource, RuleKind};
use super::set::{DestinationRule, RuleSet};
use super::virtual_service::VirtualServiceSpec;

/// One YAML document of the file.
#[derive(Debug, PartialEq, Eq)]
struct DocumentText {
    /// 0-based line of the document's first line in the file.
    first_line: usize,
    /// The document's lines, end-of-line characters included.
    text: String,
}

impl DocumentText {
    /// The document preceded by blank lines, so the parser reports file line numbers.
    fn positioned(&self) -> String {
        let mut text = "\n".repeat(self.first_line);
        text.push_str(&self.text);
        text
    }
}

fn is_marker(line: &str, marker: &str) -> bool {
    let line = line.trim_end_matches(['\n', '\r']);
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Blank, comment and directive lines carry no content.
fn is_filler(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#') || line.starts_with('%')
}

/// Splits the file at document markers. By the YAML spec a line starting with `---` or `...`
/// (followed by a space or the line end) is always a marker, even inside a block scalar, so a
/// line-based split is exact. A document is counted when it starts with `---` or has any
/// content, so numbering matches what a reader counts; comments and directives before a `---`
/// belong to the document it opens.
fn split_documents(text: &str) -> Vec<DocumentText> {
    let mut documents = Vec::new();
    let mut current = DocumentText {
        first_line: 0,
        text: String::new(),
    };
    let mut explicit = false;
    let mut flush = |current: &mut DocumentText, explicit: bool, next_line: usize| {
        let has_content = current.text.split_inclusive('\n').any(|l| !is_filler(l));
        let document = std::mem::replace(
            current,
            DocumentText {
                first_line: next_line,
                text: String::new(),
            },
        );
        if explicit || has_content {
            documents.push(document);
        }
    };
    for (number, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line, "---") {
            let only_filler = current.text.split_inclusive('\n').all(is_filler);
            if explicit || !only_filler {
                flush(&mut current, explicit, number);
            }
            // Otherwise the comments/directives so far stay and open this document.
            current.text.push_str(line);
            explicit = true;
        } else if is_marker(line, "...") {
            current.text.push_str(line);
            flush(&mut current, explicit, number + 1);
            explicit = false;
        } else {
            current.text.push_str(line);
        }
    }
    flush(&mut current, explicit, 0);
    documents
}

fn parser_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // Errors are single lines in logs and on the debug page; the line and column say where.
    options.with_snippet = false;
    options
}

/// Deserializes one document, returning the field path and message of the first problem.
fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let mut failed_at: Option<String> = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, parser_options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|error| {
            failed_at = Some(render_path(error.path()));
            error.into_inner()
        })
    })
    .map_err(|error| (failed_at.unwrap_or_default(), error.to_string()))
}

/// `spec.http[0].route` → `http[0].route`: paths are spec-relative, as users read them.
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        let name = match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
                continue;
            }
            Segment::Map { key } => key.as_str(),
            Segment::Enum { variant } => variant.as_str(),
            // Where the parser lost track (a YAML syntax error); the line and column say more.
            _ => continue,
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    }
    match out.strip_prefix("spec.") {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// A parsed resource of any kind. Short-lived (one per document while a file loads), so the size
/// difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    DestinationRule(DestinationRule),
    VirtualService(Resource<VirtualServiceSpec>),
    MetaRouter(Resource<MetaRouterSpec>),
    TrafficIsolation(Resource<TrafficIsolationSpec>),
}

/// A parsed resource and where it came from.
struct Located {
    document: usize,
    resource: ResourceRef,
    parsed: Parsed,
}

/// Builds errors for one document.
struct DocumentErrors<'a> {
    file: &'a str,
    document: usize,
    resource: Option<ResourceRef>,
}

impl DocumentErrors<'_> {
    fn error(&self, path: impl Into<String>, message: impl Into<String>) -> RuleError {
        RuleError {
            file: self.file.to_owned(),
            document: self.document,
            resource: self.resource.clone(),
            path: path.into(),
            message: message.into(),
        }
    }
}

const KINDS: &str = "DestinationRule, VirtualService, MetaRouter or TrafficIsolation";

fn parse_document(
    file: &str,
    document: usize,
    text: &str,
) -> Result<Option<Located>, Vec<RuleError>> {
    let mut errors = DocumentErrors {
        file,
        document,
        resource: None,
    };
    let probe = match deserialize::<Option<Probe>>(text) {
        Ok(Some(probe)) => probe,
        // An empty document (`---` alone, or only comments) holds no rule.
        Ok(None) => return Ok(None),
        Err((path, message)) => return Err(vec![errors.error(path, message)]),
    };
    let Some(kind) = probe.kind.filter(|k| !k.is_empty()) else {
        return Err(vec![errors.error("kind", "missing `kind`")]);
    };
    let (namespace, name) = probe
        .metadata
        .map(|m| (m.namespace, m.name))
        .unwrap_or_default();
    let resource = ResourceRef {
        kind: kind.clone(),
        namespace: namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        name: name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "?".to_owned()),
    };
    errors.resource = Some(resource.clone());
    let api_version = probe.api_version.unwrap_or_default();
    let parsed = match kind.as_str() {
        "DestinationRule" => Parsed::DestinationRule(typed(
            &errors,
            &api_version,
            text,
            DestinationRuleSpec::validate,
        )?),
        "VirtualService" => Parsed::VirtualService(typed(
            &errors,
            &api_version,
            text,
            VirtualServiceSpec::validate,
        )?),
        "MetaRouter" => Parsed::MetaRouter(typed(
            &errors,
            &api_version,
            text,
            MetaRouterSpec::validate,
        )?),
        "TrafficIsolation" => Parsed::TrafficIsolation(typed(
            &errors,
            &api_version,
            text,
            TrafficIsolationSpec::validate,
        )?),
        other => {
            return Err(vec![errors.error(
                "kind",
                format!("unsupported kind `{other}` (expected {KINDS})"),
            )]);
        }
    };
    Ok(Some(Located {
        document,
        resource,
        parsed,
    }))
}

/// Parses and validates a document of kind `S`.
fn typed<S: RuleKind + DeserializeOwned>(
    errors: &DocumentErrors<'_>,
    api_version: &str,
    text: &str,
    validate: impl FnOnce(&S, &mut Issues),
) -> Result<Resource<S>, Vec<RuleError>> {
    if !S::API_VERSIONS.contains(&api_version) {
        let message = if api_version.is_empty() {
            "missing `apiVersion`".to_owned()
        } else {
            format!(
                "unsupported apiVersion `{api_version}` for {} (expected {})",
                S::KIND,
                S::API_VERSIONS.join(", ")
            )
        };
        return Err(vec![errors.error("apiVersion", message)]);
    }
    let raw: RawDocument<S> =
        deserialize(text).map_err(|(path, message)| vec![errors.error(path, message)])?;
    let metadata = raw.metadata.into_meta();
    let mut issues = Issues::default();
    if metadata.name.is_empty() {
        issues.add("metadata.name", "missing `metadata.name`");
    }
    validate(&raw.spec, &mut issues);
    let found = issues.into_vec();
    if found.is_empty() {
        Ok(Resource {
            metadata,
            spec: raw.spec,
        })
    } else {
        Err(found
            .into_iter()
            .map(|(path, message)| errors.error(path, message))
            .collect())
    }
}

/// Parses a whole file; see the module docs.
pub(crate) fn parse(file: &str, text: &str) -> Result<RuleSet, RulesError> {
    let mut errors = Vec::new();
    let mut located = Vec::new();
    for (i, document) in split_documents(text).iter().enumerate() {
        match parse_document(file, i + 1, &document.positioned()) {
            Ok(Some(found)) => located.push(found),
            Ok(None) => {}
            Err(found) => errors.extend(found),
        }
    }
    // Cross-resource checks only make sense on a complete set: a document that failed to parse
    // would otherwise show up again as, say, a missing subset.
    if errors.is_empty() {
        errors = cross_check(file, &located);
    }
    if !errors.is_empty() {
        errors.sort_by_key(|error| error.document);
        return Err(RulesError::Invalid { errors });
    }
    let warnings = warnings(file, &located);
    let (mut drs, mut vss, mut mrs, mut tis) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for found in located {
        match found.parsed {
            Parsed::DestinationRule(r) => drs.push(r),
            Parsed::VirtualService(r) => vss.push(r),
            Parsed::MetaRouter(r) => mrs.push(r),
            Parsed::TrafficIsolation(r) => tis.push(r),
        }
    }
    Ok(RuleSet::from_parts(drs, vss, mrs, tis).with_warnings(warnings))
}

/// What a valid file probably did not mean ([`advice`](super::advice)), in document order.
fn warnings(file: &str, located: &[Located]) -> Vec<RuleError> {
    let rules: Vec<(&ResourceRef, &DestinationRule)> = located
        .iter()
        .filter_map(|found| match &found.parsed {
            Parsed::DestinationRule(rule) => Some((&found.resource, rule)),
            _ => None,
        })
        .collect();
    let rule_for = |host: &str| {
        most_specific(
            rules
                .iter()
                .map(|(resource, rule)| (rule.spec.host.as_str(), (*resource, &rule.spec))),
            host,
        )
    };
    located
        .iter()
        .filter_map(|found| match &found.parsed {
            Parsed::TrafficIsolation(isolation) => Some(IsolationDocument {
                document: found.document,
                resource: &found.resource,
                spec: &isolation.spec,
            }),
            _ => None,
        })
        .flat_map(|found| isolation_warnings(file, &found, rule_for))
        .collect()
}

/// Checks that span documents: unique resource names per kind, one DestinationRule and one
/// TrafficIsolation per host, and every subset a route or class names defined by the
/// DestinationRule of its host.
fn cross_check(file: &str, located: &[Located]) -> Vec<RuleError> {
    let error = |found: &Located, path: String, message: String| RuleError {
        file: file.to_owned(),
        document: found.document,
        resource: Some(found.resource.clone()),
        path,
        message,
    };
    let mut errors = Vec::new();

    let mut names: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    // A resource repeated whole is reported once, not again for each host it repeats.
    let mut repeated = BTreeSet::new();
    for found in located {
        let r = &found.resource;
        let key = (r.kind.as_str(), r.namespace.as_str(), r.name.as_str());
        if let Some(first) = names.insert(key, found.document) {
            repeated.insert(found.document);
            errors.push(error(
                found,
                "metadata.name".to_owned(),
                format!("duplicate {r} (also in document {first})"),
            ));
        }
    }

    let mut rule_hosts: BTreeMap<&str, &Located> = BTreeMap::new();
    let mut isolation_hosts: BTreeMap<&str, &Located> = BTreeMap::new();
    let mut rules: Vec<&DestinationRule> = Vec::new();
    for found in located {
        if repeated.contains(&found.document) {
            continue;
        }
        match &found.parsed {
            Parsed::DestinationRule(rule) => {
                rules.push(rule);
                if let Some(first) = rule_hosts.insert(&rule.spec.host, found) {
                    errors.push(error(
                        found,
                        "host".to_owned(),
                        format!(
                            "host `{}` already has {} (document {})",
                            rule.spec.host, first.resource, first.document
                        ),
                    ));
                }
            }
            Parsed::TrafficIsolation(isolation) => {
                let spec = &isolation.spec;
                let paths = spec
                    .host
                    .iter()
                    .map(|_| "host".to_owned())
                    .chain((0..spec.hosts.len()).map(|i| index("hosts", i)));
                for (host, path) in spec.host_names().zip(paths) {
                    if let Some(first) = isolation_hosts.insert(host, found) {
                        errors.push(error(
                            found,
                            path,
                            format!(
                                "host `{host}` already has {} (document {})",
                                first.resource, first.document
                            ),
                        ));
                    }
                }
            }
            Parsed::VirtualService(_) | Parsed::MetaRouter(_) => {}
        }
    }

    for found in located {
        for (path, host, subset) in subset_references(&found.parsed) {
            if let Err(message) = check_subset(&rules, host, subset) {
                errors.push(error(found, path, message));
            }
        }
    }
    errors
}

/// Every `(path, host, subset)` a resource refers to.
fn subset_references<'a>(parsed: &'a Parsed) -> Vec<(String, &'a str, &'a str)> {
    let mut out = Vec::new();
    let mut destination = |path: String, d: &'a Destination| {
        if let Some(subset) = &d.subset {
            out.push((field(&path, "subset"), d.host.as_str(), subset.as_str()));
        }
    };
    match parsed {
        Parsed::DestinationRule(_) => {}
        Parsed::VirtualService(vs) => {
            for (i, route) in vs.spec.http.iter().enumerate() {
                let at = index("http", i);
                for (j, entry) in route.route.iter().enumerate() {
                    destination(
                        field(&index(&field(&at, "route"), j), "destination"),
                        &entry.destination,
                    );
                }
                if let Some(mirror) = &route.mirror {
                    destination(field(&at, "mirror"), mirror);
                }
            }
        }
        Parsed::MetaRouter(router) => {
            for (i, route) in router.spec.routes.iter().enumerate() {
                let at = index("routes", i);
                for (j, entry) in route.route.iter().enumerate() {
                    destination(
                        field(&index(&field(&at, "route"), j), "destination"),
                        &entry.destination,
                    );
                }
                if let Some(mirror) = &route.mirror {
                    destination(field(&at, "mirror"), mirror);
                }
                for (j, policy) in route.request_mirror_policies.iter().enumerate() {
                    destination(
                        field(
                            &index(&field(&at, "requestMirrorPolicies"), j),
                            "destination",
                        ),
                        &policy.destination,
                    );
                }
            }
        }
        Parsed::TrafficIsolation(isolation) => {
            for (i, class) in isolation.spec.classes.iter().enumerate() {
                if let Some(subset) = &class.subset {
                    for host in isolation.spec.host_names() {
                        out.push((field(&index("classes", i), "subset"), host, subset.as_str()));
                    }
                }
            }
        }
    }
    out
}

/// The item whose host pattern names `host` most specifically (one DestinationRule per host, so
/// there are no ties among rules).
fn most_specific<'a, T>(items: impl Iterator<Item = (&'a str, T)>, host: &str) -> Option<T> {
    items
        .filter_map(|(pattern, item)| host_specificity(pattern, host).map(|s| (s, item)))
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(_, item)| item)
}

fn check_subset(rules: &[&DestinationRule], host: &str, subset: &str) -> Result<(), String> {
    let rule = most_specific(rules.iter().map(|r| (r.spec.host.as_str(), *r)), host);
    match rule {
        None => Err(format!(
            "subset `{subset}` is not defined: no DestinationRule for host `{host}`"
        )),
        Some(rule) if rule.spec.subset(subset).is_none() => {
            let defined: Vec<&str> = rule.spec.subsets.iter().map(|s| s.name.as_str()).collect();
            Err(format!(
                "subset `{subset}` is not defined by DestinationRule {} for host `{host}` \
                 (defined: {})",
                rule.id(),
                if defined.is_empty() {
                    "none".to_owned()
                } else {
                    defined.join(", ")
                }
            ))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    fn texts(input: &str) -> Vec<(usize, String)> {
        split_documents(input)
            .into_iter()
            .map(|d| (d.first_line, d.text))
            .collect()
    }

    #[test]
    fn splits_on_markers_and_keeps_line_numbers() {
        let docs = texts("# header\n---\na: 1\n---\nb: 2\n...\n---\nc: |\n  x\n");
        assert_eq!(
            docs,
            vec![
                (0, "# header\n---\na: 1\n".to_owned()),
                (3, "---\nb: 2\n...\n".to_owned()),
                (6, "---\nc: |\n  x\n".to_owned()),
            ]
        );
    }

    #[test]
    fn implicit_first_document_and_empty_explicit_ones_count() {
        let docs = texts("a: 1\n---\n---\nb: 2\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1], (1, "---\n".to_owned()));
        assert!(texts("").is_empty());
        assert!(texts("# only a comment\n").is_empty());
        assert_eq!(texts("---  # note\r\na: 1\r\n").len(), 1);
        // `----` and `---x` are content, not markers.
        assert_eq!(texts("a: |\n  ----\n---x: 1\n").len(), 1);
    }

    #[test]
    fn positioned_text_keeps_file_line_numbers() {
        let docs = split_documents("a: 1\n---\nb: [\n");
        assert_eq!(docs[1].positioned(), "\n---\nb: [\n");
    }
}
