//! A small PromQL scanner for checking dashboards and rules against the metric contract: which
//! metrics an expression selects, with which label matchers, and which labels it groups or
//! matches on. It is no parser — `promtool` (see [`crate::promtool`]) decides whether an
//! expression is valid — it only has to find names reliably in expressions promtool accepts.
//!
//! Also Grafana's side of a query: substituting dashboard variables with values PromQL accepts,
//! and splitting `label_values(selector, label)` variable queries.

/// One vector selector: `metric{label="…", …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name.
    pub metric: String,
    /// Its label matchers, in order.
    pub matchers: Vec<Matcher>,
}

/// One label matcher: `label op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label name.
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    /// The value between the quotes, escapes left as written.
    pub value: String,
}

impl Selector {
    /// The label names its matchers use, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.matchers.iter().map(|m| m.label.as_str()).collect()
    }
}

/// What an expression refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every vector selector that names its metric.
    pub selectors: Vec<Selector>,
    /// Selectors without a metric name (`{__name__=~"…"}`), which no contract can check.
    pub unnamed_selectors: usize,
    /// Labels named by `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
    pub grouping_labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number,
    Punct(char),
}

/// Keywords that look like identifiers but name no metric.
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Keywords followed by a parenthesised list of label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn lex(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            i += 1;
            let start = i;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in `{expr}`")),
                    Some('\\') if quote != '`' => i += 2,
                    Some(&d) if d == quote => break,
                    Some(_) => i += 1,
                }
            }
            tokens.push(Token::Str(chars[start..i].iter().collect()));
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations (`0.99`, `1e3`, `5m`, `1h30m`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Number);
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(tokens)
}

/// Reads a `{…}` matcher list starting at `tokens[i] == '{'`; returns the matchers and the
/// index after the closing brace.
fn matchers(tokens: &[Token], mut i: usize) -> Result<(Vec<Matcher>, usize), String> {
    let mut matchers = Vec::new();
    i += 1;
    loop {
        match tokens.get(i) {
            Some(Token::Punct('}')) => return Ok((matchers, i + 1)),
            Some(Token::Punct(',')) => i += 1,
            Some(Token::Ident(label)) => {
                let mut op = String::new();
                i += 1;
                while let Some(Token::Punct(c)) = tokens.get(i) {
                    op.push(*c);
                    i += 1;
                }
                let Some(Token::Str(value)) = tokens.get(i) else {
                    return Err(format!("label `{label}` has no quoted value"));
                };
                matchers.push(Matcher {
                    label: label.clone(),
                    op,
                    value: value.clone(),
                });
                i += 1;
            }
            Some(other) => return Err(format!("unexpected {other:?} in label matchers")),
            None => return Err("unterminated label matchers".to_owned()),
        }
    }
}

/// Finds the metrics, matchers and grouping labels of `expr`.
pub fn scan(expr: &str) -> Result<Scan, String> {
    let tokens = lex(expr)?;
    let mut scan = Scan::default();
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        let next = tokens.get(i + 1);
        match token {
            Token::Ident(name) if GROUPING.contains(&name.as_str()) => {
                i += 1;
                if next == Some(&Token::Punct('(')) {
                    i += 1;
                    while let Some(token) = tokens.get(i) {
                        i += 1;
                        match token {
                            Token::Punct(')') => break,
                            Token::Ident(label) => scan.grouping_labels.push(label.clone()),
                            _ => {}
                        }
                    }
                }
            }
            Token::Ident(name) if KEYWORDS.contains(&name.to_ascii_lowercase().as_str()) => i += 1,
            // A function or aggregation (`sum(…)`, `sum by (…) (…)`).
            Token::Ident(_)
                if matches!(next, Some(Token::Punct('(')))
                    || matches!(next, Some(Token::Ident(word)) if word == "by" || word == "without") =>
            {
                i += 1
            }
            Token::Ident(name) => {
                let mut selector = Selector {
                    metric: name.clone(),
                    matchers: Vec::new(),
                };
                i += 1;
                if next == Some(&Token::Punct('{')) {
                    let (found, after) = matchers(&tokens, i)?;
                    selector.matchers = found;
                    i = after;
                }
                scan.selectors.push(selector);
            }
            Token::Punct('{') => {
                let (_, after) = matchers(&tokens, i)?;
                scan.unnamed_selectors += 1;
                i = after;
            }
            // Range and subquery durations.
            Token::Punct('[') => {
                while tokens.get(i).is_some_and(|t| *t != Token::Punct(']')) {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(scan)
}

/// Replaces Grafana's variables with values PromQL accepts: interval variables with durations,
/// every other `$name`, `${name}` or `${name:format}` with `.*` (they appear inside label
/// matcher strings; anywhere else the result no longer parses, which is the point).
pub fn substitute_grafana_variables(expr: &str) -> String {
    const INTERVALS: [(&str, &str); 6] = [
        ("$__rate_interval", "1m"),
        ("${__rate_interval}", "1m"),
        ("$__interval", "15s"),
        ("${__interval}", "15s"),
        ("$__range", "1h"),
        ("${__range}", "1h"),
    ];
    let mut text = expr.to_owned();
    for (variable, value) in INTERVALS {
        text = text.replace(variable, value);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            if chars.get(i + 1) == Some(&'{') {
                if let Some(end) = chars[i..].iter().position(|&c| c == '}') {
                    out.push_str(".*");
                    i += end + 1;
                    continue;
                }
            } else if chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
            {
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                out.push_str(".*");
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Splits a Grafana Prometheus variable query `label_values(selector, label)` or
/// `label_values(label)` into its selector (if any) and label; `None` for any other query.
pub fn label_values(query: &str) -> Option<(Option<&str>, &str)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?
        .trim();
    // The label is after the last comma outside braces and quotes.
    let mut depth = 0_i32;
    let mut quoted = false;
    let mut split = None;
    let mut previous = ' ';
    for (at, c) in inner.char_indices() {
        match c {
            '"' if previous != '\\' => quoted = !quoted,
            '{' | '(' if !quoted => depth += 1,
            '}' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => split = Some(at),
            _ => {}
        }
        previous = c;
    }
    match split {
        Some(at) => Some((Some(inner[..at].trim()), inner[at + 1..].trim())),
        None => Some((None, inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(scan: &Scan) -> Vec<&str> {
        scan.selectors.iter().map(|s| s.metric.as_str()).collect()
    }

    #[test]
    fn finds_selectors_matchers_and_grouping() {
        let scan = scan(
            r#"histogram_quantile(0.99, sum by (destination_service, le) (rate(istio_request_duration_milliseconds_bucket{reporter="source", namespace=~"a|b"}[5m])))"#,
        )
        .unwrap();
        assert_eq!(
            metrics(&scan),
            ["istio_request_duration_milliseconds_bucket"]
        );
        assert_eq!(scan.selectors[0].labels(), ["reporter", "namespace"]);
        assert_eq!(
            scan.selectors[0].matchers[1],
            Matcher {
                label: "namespace".into(),
                op: "=~".into(),
                value: "a|b".into()
            }
        );
        assert_eq!(scan.grouping_labels, ["destination_service", "le"]);
    }

    #[test]
    fn skips_functions_keywords_strings_and_durations() {
        let scan = scan(
            r#"sum(rate(a_total{x="by (y)", z!~'q{r}'}[1h30m] offset 5m)) / ignoring(v) group_left() sum(b) or vector(0) and on() count(c:rec:rate5m > bool 1) # d"#,
        )
        .unwrap();
        assert_eq!(metrics(&scan), ["a_total", "b", "c:rec:rate5m"]);
        assert_eq!(scan.selectors[0].labels(), ["x", "z"]);
        assert_eq!(scan.grouping_labels, ["v"]);
    }

    #[test]
    fn counts_unnamed_selectors() {
        let scan = scan(r#"count({__name__=~"istio_.*"})"#).unwrap();
        assert!(scan.selectors.is_empty());
        assert_eq!(scan.unnamed_selectors, 1);
    }

    #[test]
    fn substitutes_grafana_variables() {
        assert_eq!(
            substitute_grafana_variables(
                r#"rate(m{a=~"$namespace", b=~"${service:regex}"}[$__rate_interval]) + increase(m[$__range])"#
            ),
            r#"rate(m{a=~".*", b=~".*"}[1m]) + increase(m[1h])"#
        );
    }

    #[test]
    fn splits_label_values_queries() {
        assert_eq!(
            label_values(r#"label_values(m{a=~"$x", b="c,d"}, destination_service)"#),
            Some((Some(r#"m{a=~"$x", b="c,d"}"#), "destination_service"))
        );
        assert_eq!(label_values("label_values(job)"), Some((None, "job")));
        assert_eq!(label_values("query_result(up)"), None);
    }
}
