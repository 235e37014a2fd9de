//! Value types every rule kind shares: string matches (exact/prefix/regex), Istio-style durations,
//! percentages, destinations, and host names/patterns.
//!
//! Field-local checks (a regex that does not compile, a duration with an unknown unit, a percentage
//! above 100) happen while deserializing, so the error carries the exact field path for free.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{Issues, field, index};

/// The largest compiled regex accepted, in bytes: rules come from a file anyone with write access
/// can edit, and a pathological pattern must not cost the bridge (or a proxy) unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a string (URI, authority, header, attribute) is matched. Matching is case-sensitive.
///
/// Written as Istio's `StringMatch`: `{exact: v}`, `{prefix: v}` or `{regex: v}`. An empty map
/// `{}` only checks that the value is present, as Istio headers and Aeraki attributes do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawStringMatch", rename_all = "camelCase")]
pub enum StringMatch {
    /// The whole value equals this string.
    Exact(String),
    /// The value starts with this string.
    Prefix(String),
    /// The whole value matches this RE2-style regular expression.
    Regex(Pattern),
    /// The value only has to be present.
    Present,
}

impl StringMatch {
    /// Whether `value` satisfies the match.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => value == expected,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(pattern) => pattern.is_match(value),
            Self::Present => true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStringMatch {
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

impl TryFrom<RawStringMatch> for StringMatch {
    type Error = String;

    fn try_from(raw: RawStringMatch) -> Result<Self, String> {
        match (raw.exact, raw.prefix, raw.regex) {
            (None, None, None) => Ok(Self::Present),
            (Some(exact), None, None) => Ok(Self::Exact(exact)),
            (None, Some(prefix), None) => Ok(Self::Prefix(prefix)),
            (None, None, Some(regex)) => Pattern::new(&regex).map(Self::Regex),
            _ => Err("give only one of `exact`, `prefix` and `regex`".to_owned()),
        }
    }
}

/// A compiled regular expression that matches whole values (Envoy's and Istio's semantics: the
/// pattern is implicitly anchored at both ends).
#[derive(Clone)]
pub struct Pattern {
    source: String,
    compiled: regex::Regex,
}

impl Pattern {
    /// Compiles `source`; the error is one line naming the pattern and the problem.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(|compiled| Self {
                source: source.to_owned(),
                compiled,
            })
            .map_err(|error| format!("invalid regex `{source}`: {}", regex_reason(&error)))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.compiled.is_match(value)
    }
}

/// The regex crate's syntax errors span several lines (pattern, caret, reason); keep the reason
/// so rule errors stay one line each.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// A duration written the way Istio users write them: `1s`, `100ms`, `1.5s`, `2m`, `1h30m`.
///
/// Units are `h`, `m`, `s`, `ms`, `us` (or `µs`) and `ns`; a bare `0` is zero. It serializes back
/// in the largest unit that represents it exactly, so equal durations hash equally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleDuration(pub std::time::Duration);

impl RuleDuration {
    /// The duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// Parses Istio/Go duration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_duration(text)
            .map(Self)
            .map_err(|reason| format!("invalid duration {text:?}: {reason}"))
    }
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if text.is_empty() {
        return Err("empty".to_owned());
    }
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if text.starts_with('-') {
        return Err("must not be negative".to_owned());
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !is_number(c)).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after.find(is_number).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "h" => 3600 * NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "s" => NANOS_PER_SECOND,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            "" => return Err("missing unit (use h, m, s, ms, us or ns)".to_owned()),
            other => {
                return Err(format!(
                    "unknown unit {other:?} (use h, m, s, ms, us or ns)"
                ));
            }
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!("{number:?} is not a number"));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| "too large".to_owned())?
        };
        let mut nanos = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| "too large".to_owned())?;
        // Digits past nanosecond precision scale to zero and are dropped, as Go does.
        let mut scale = unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total
            .checked_add(nanos)
            .ok_or_else(|| "too large".to_owned())?;
        rest = next;
    }
    let seconds = u64::try_from(total / NANOS_PER_SECOND).map_err(|_| "too large".to_owned())?;
    let nanos = u32::try_from(total % NANOS_PER_SECOND).map_err(|_| "too large".to_owned())?;
    Ok(std::time::Duration::new(seconds, nanos))
}

impl fmt::Display for RuleDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        let units: [(u128, &str); 5] = [
            (3600 * NANOS_PER_SECOND, "h"),
            (60 * NANOS_PER_SECOND, "m"),
            (NANOS_PER_SECOND, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
        ];
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (size, unit) in units {
            if nanos.is_multiple_of(size) {
                return write!(f, "{}{unit}", nanos / size);
            }
        }
        write!(f, "{nanos}ns")
    }
}

impl Serialize for RuleDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RuleDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Istio's `Percent`: `{value: 12.5}`, a share of requests in 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// The percentage, 0 to 100 inclusive.
    #[serde(default, deserialize_with = "percent_value")]
    pub value: f64,
}

impl Percent {
    /// The share as a fraction in 0..=1.
    pub fn fraction(self) -> f64 {
        self.value / 100.0
    }
}

fn percent_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    // `contains` is false for NaN, so `.nan` is rejected too.
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "percentage {value} is outside 0..100"
        )))
    }
}

/// Where a route sends requests: a host, optionally one of its subsets and ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    /// The service host (as published by the bridge).
    pub host: String,
    /// A subset the host's DestinationRule defines; `""` means none, as in Istio.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub subset: Option<String>,
    /// The service port, when the host has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Istio's `PortSelector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    /// The port number, 1..=65535.
    pub number: u32,
}

/// One weighted destination of a route (Istio `HTTPRouteDestination`, Aeraki
/// `MetaRouteDestination`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where the share goes.
    pub destination: Destination,
    /// Share of the traffic, 0..=100. With several destinations the weights must sum to 100; a
    /// single destination receives all traffic whatever its weight.
    #[serde(default)]
    pub weight: u32,
}

/// Deserializes an optional string, treating `""` as absent (Istio's proto3 default).
pub(crate) fn empty_as_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

/// Checks a host or host pattern as rules may name it: non-empty, no spaces or slashes, and `*`
/// only as a whole leading label (`*.acme.svc`) or on its own (when `wildcard` is allowed).
pub(crate) fn check_host(host: &str, wildcard: bool) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".to_owned());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '|')
    {
        return Err(format!("host `{host}` must not contain spaces, `/` or `|`"));
    }
    if host.contains('*') {
        if !wildcard {
            return Err(format!("host `{host}` must not be a wildcard"));
        }
        let tail = host.strip_prefix('*').unwrap_or(host);
        if !(tail.is_empty() || (tail.starts_with('.') && tail.len() > 1 && !tail.contains('*'))) {
            return Err(format!(
                "host `{host}`: `*` is only allowed on its own or as a leading `*.`"
            ));
        }
    }
    Ok(())
}

/// How specifically `pattern` names `host`, or `None` when it does not: an exact name beats a
/// longer wildcard suffix, which beats a shorter one, which beats `*`.
pub(crate) fn host_specificity(pattern: &str, host: &str) -> Option<usize> {
    if pattern == host {
        return Some(usize::MAX);
    }
    if pattern == "*" {
        return Some(0);
    }
    let suffix = pattern.strip_prefix('*')?;
    (host.len() > suffix.len() && host.ends_with(suffix)).then_some(pattern.len())
}

/// Checks a name used inside cluster names and metric labels (subsets, traffic classes): a
/// DNS-1123 label, as Istio requires of subset names.
pub(crate) fn check_label_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name (lower-case letters, digits and `-`, at most 63, \
             starting and ending with a letter or digit)"
        ))
    }
}

/// Checks a destination: a concrete host (no wildcard) and a valid port.
pub(crate) fn check_destination(issues: &mut Issues, path: &str, destination: &Destination) {
    issues.check(field(path, "host"), check_host(&destination.host, false));
    if let Some(port) = destination.port {
        issues.check(field(path, "port.number"), check_port(port.number));
    }
}

/// Checks a port number.
pub(crate) fn check_port(number: u32) -> Result<(), String> {
    if (1..=65535).contains(&number) {
        Ok(())
    } else {
        Err(format!("port {number} is outside 1..65535"))
    }
}

/// Checks a weighted destination list: at least one entry, valid destinations, and (Istio's rule)
/// weights summing to 100 when there is more than one. The sum error is reported on the last
/// weight, where the author most likely stopped counting.
pub(crate) fn check_route_destinations(
    issues: &mut Issues,
    path: &str,
    route: &[RouteDestination],
) {
    if route.is_empty() {
        issues.add(path, "at least one destination is required");
        return;
    }
    for (i, entry) in route.iter().enumerate() {
        let at = index(path, i);
        check_destination(issues, &field(&at, "destination"), &entry.destination);
        if entry.weight > 100 {
            issues.add(
                field(&at, "weight"),
                format!("weight {} is above 100", entry.weight),
            );
        }
    }
    if route.len() > 1 {
        let sum: u64 = route.iter().map(|entry| u64::from(entry.weight)).sum();
        if sum != 100 {
            issues.add(
                field(&index(path, route.len() - 1), "weight"),
                format!("weights sum to {sum}, expected 100"),
            );
        }
    }
}
