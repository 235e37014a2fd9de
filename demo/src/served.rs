//! Who answered a call: every demo provider, whatever its protocol, answers with its version and
//! zone in one shape (`… (from v2 in zone-a)`), so the scenarios count where calls went the same
//! way for Dubbo, Thrift, gRPC and HTTP; a failed call is a [`CallError`] in any of them.

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The connection closed or the answer did not come in time.
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// The proxy or provider answered with a Dubbo error status.
    #[error("status {status}: {message}")]
    Status {
        /// The Dubbo status byte.
        status: u8,
        /// The error message.
        message: String,
    },
    /// A Thrift, gRPC or HTTP error answer: the `TApplicationException` type, the gRPC status or
    /// the HTTP status, and its message.
    #[error("{code}: {message}")]
    Failed {
        /// What the caller's protocol calls the error (`UNAVAILABLE`, `HTTP 503`, …).
        code: String,
        /// The error message.
        message: String,
    },
}

/// A successful answer: which provider version and zone served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The provider's version label.
    pub version: String,
    /// The provider's zone.
    pub zone: String,
}

impl Served {
    /// The answer text a provider sends: `<greeting> (from <version> in <zone>)`.
    pub fn answer(greeting: &str, version: &str, zone: &str) -> String {
        format!("{greeting} (from {version} in {zone})")
    }

    /// Reads who served a call from its answer text; `None` when the text is not in the shape
    /// [`Served::answer`] writes.
    pub fn parse(text: &str) -> Option<Self> {
        let who = text.rsplit_once("(from ")?.1.strip_suffix(')')?;
        let (version, zone) = who.split_once(" in ")?;
        // The Java sample adds where it listens: `v2 in zone-a on port 20880`.
        let zone = zone.split(" on port ").next().unwrap_or(zone);
        (!version.is_empty() && !zone.is_empty()).then(|| Self {
            version: version.to_owned(),
            zone: zone.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip() {
        let text = Served::answer("In stock: 7", "v2", "zone-a");
        assert_eq!(text, "In stock: 7 (from v2 in zone-a)");
        assert_eq!(
            Served::parse(&text),
            Some(Served {
                version: "v2".into(),
                zone: "zone-a".into()
            })
        );
    }

    #[test]
    fn the_java_samples_answer_names_version_and_zone() {
        let served = Served::parse("Hello, causeway (from v1 in zone-b on port 20880)").unwrap();
        assert_eq!(
            (served.version.as_str(), served.zone.as_str()),
            ("v1", "zone-b")
        );
    }

    #[test]
    fn other_text_is_not_an_answer() {
        for text in [
            "",
            "Hello",
            "(from v1)",
            "(from  in zone-a)",
            "(from v1 in zone-a",
        ] {
            assert_eq!(Served::parse(text), None, "{text}");
        }
    }
}
