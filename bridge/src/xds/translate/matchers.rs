//! Rule values in Envoy's vocabulary, shared by every route flavour: string matches, header
//! matchers, percentages and durations.

use causeway_protocols::rules::common::{Percent, RuleDuration, StringMatch};
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::Duration as PbDuration;

/// A string match as Envoy's `StringMatcher`; `None` for "present", which Envoy spells as a
/// header's `present_match` instead.
pub fn string_matcher(rule: &StringMatch) -> Option<StringMatcher> {
    let pattern = match rule {
        StringMatch::Exact(value) => string_matcher::MatchPattern::Exact(value.clone()),
        StringMatch::Prefix(value) => string_matcher::MatchPattern::Prefix(value.clone()),
        StringMatch::Regex(pattern) => {
            string_matcher::MatchPattern::SafeRegex(regex(pattern.as_str()))
        }
        StringMatch::Present => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

/// An RE2 regex matcher (Envoy anchors `safe_regex` at both ends, as the rules do).
pub fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_owned(),
        ..RegexMatcher::default()
    }
}

/// A header (or request attribute) named `name` matching `rule`.
pub fn header(name: &str, rule: &StringMatch) -> HeaderMatcher {
    let specifier = match string_matcher(rule) {
        Some(matcher) => header_matcher::HeaderMatchSpecifier::StringMatch(matcher),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(specifier),
        ..HeaderMatcher::default()
    }
}

/// A percentage at per-million resolution, so `0.1%` survives.
pub fn fraction(percent: Percent) -> FractionalPercent {
    FractionalPercent {
        // 0..=100 % is 0..=1,000,000 per million: the cast cannot overflow.
        numerator: (percent.value * 10_000.0).round() as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

/// A percentage as a runtime fraction (mirror policies), with no runtime key.
pub fn runtime_fraction(percent: Percent) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(fraction(percent)),
        runtime_key: String::new(),
    }
}

/// A rule duration as a protobuf duration.
pub fn duration(value: RuleDuration) -> PbDuration {
    from_std(value.get())
}

/// A standard duration as a protobuf duration (saturating at `i64::MAX` seconds).
pub fn from_std(value: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        // Sub-second nanoseconds are below 10^9: always fits.
        nanos: value.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_protocols::rules::common::Pattern;

    #[test]
    fn present_becomes_a_present_match_and_regexes_stay_as_written() {
        let present = header("x-canary", &StringMatch::Present);
        assert_eq!(
            present.header_match_specifier,
            Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true))
        );
        let regex = string_matcher(&StringMatch::Regex(Pattern::new("v[12]").unwrap())).unwrap();
        assert_eq!(
            regex.match_pattern,
            Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                regex: "v[12]".into(),
                ..RegexMatcher::default()
            }))
        );
    }

    #[test]
    fn percentages_keep_per_million_resolution() {
        assert_eq!(fraction(Percent { value: 0.1 }).numerator, 1_000);
        assert_eq!(fraction(Percent { value: 100.0 }).numerator, 1_000_000);
        assert_eq!(
            from_std(std::time::Duration::from_millis(1_500)),
            PbDuration {
                seconds: 1,
                nanos: 500_000_000
            }
        );
    }
}
