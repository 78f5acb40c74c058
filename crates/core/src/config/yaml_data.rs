//! YAML data files (an identity export) deserialized straight into typed values, event by
//! event: no `Value` tree, no span per node. The refusals are config's own (anchors,
//! aliases, non-core tags, more than one document, absurd nesting); scalars resolve by
//! the YAML 1.2 core schema; a duplicate key or a wrong type is serde's error. Every
//! error names its line and column.

use saphyr_parser::{Event, Parser, ScalarStyle, StrInput};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;

use super::yaml::{MAX_DEPTH, is_core_tag, resolve_plain};

/// Why a data file could not be read: the message and where, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for DataError {}

impl de::Error for DataError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        DataError {
            message: message.to_string(),
            line: 0,
            column: 0,
        }
    }
}

/// Deserializes one YAML document of `text` into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, DataError> {
    let mut events = Events {
        parser: Parser::new_from_str(text),
        peeked: None,
        depth: 0,
        at: (1, 1),
    };
    // Past the stream and document starts.
    while let Event::StreamStart | Event::DocumentStart(_) = events.peek()? {
        events.next()?;
    }
    let value = T::deserialize(&mut events).map_err(|e| events.locate(e))?;
    loop {
        match events.next()? {
            Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(value),
            Event::DocumentStart(_) => {
                return Err(
                    events.error("a second YAML document starts here; the file holds exactly one")
                );
            }
            _ => return Err(events.error("unexpected content after the document")),
        }
    }
}

struct Events<'a> {
    parser: Parser<'a, StrInput<'a>>,
    peeked: Option<Event<'a>>,
    depth: usize,
    /// Where the last event read starts.
    at: (usize, usize),
}

impl<'a> Events<'a> {
    fn error(&self, message: impl Into<String>) -> DataError {
        DataError {
            message: message.into(),
            line: self.at.0,
            column: self.at.1,
        }
    }

    /// An error from serde, placed at the event being read.
    fn locate(&self, error: DataError) -> DataError {
        if error.line == 0 {
            DataError {
                line: self.at.0,
                column: self.at.1,
                ..error
            }
        } else {
            error
        }
    }

    fn pull(&mut self) -> Result<Event<'a>, DataError> {
        match self.parser.next() {
            Some(Ok((event, span))) => {
                self.at = (span.start.line(), span.start.col() + 1);
                Ok(event)
            }
            Some(Err(error)) => Err(DataError {
                message: if error.info().contains("unknown anchor") {
                    "YAML aliases (`*name`) are not allowed; write the value out in full".into()
                } else {
                    format!("YAML syntax error: {}", error.info())
                },
                line: error.marker().line(),
                column: error.marker().col() + 1,
            }),
            None => Ok(Event::StreamEnd),
        }
    }

    fn peek(&mut self) -> Result<&Event<'a>, DataError> {
        if self.peeked.is_none() {
            let event = self.pull()?;
            self.peeked = Some(event);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn next(&mut self) -> Result<Event<'a>, DataError> {
        let event = match self.peeked.take() {
            Some(event) => event,
            None => self.pull()?,
        };
        match &event {
            Event::Alias(_) => {
                Err(self
                    .error("YAML aliases (`*name`) are not allowed; write the value out in full"))
            }
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if *anchor != 0 =>
            {
                Err(self.error("YAML anchors (`&name`) are not allowed"))
            }
            Event::Scalar(_, _, _, Some(tag))
            | Event::SequenceStart(_, Some(tag))
            | Event::MappingStart(_, Some(tag))
                if !is_core_tag(tag) =>
            {
                Err(self.error(format!(
                    "YAML tag `{}{}` is not allowed",
                    tag.handle, tag.suffix
                )))
            }
            _ => Ok(event),
        }
    }

    fn enter(&mut self) -> Result<(), DataError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "nesting deeper than {MAX_DEPTH} levels is not allowed"
            )));
        }
        Ok(())
    }
}

/// A plain scalar that is not text by the core schema (null, a bool, a number), if it is
/// one; text (most of a data file) is never copied to find out.
fn non_text(text: &str, style: ScalarStyle, tag: Option<&saphyr_parser::Tag>) -> Option<Value> {
    if style != ScalarStyle::Plain || tag.is_some_and(|t| t.suffix == "str") {
        return None;
    }
    let may_be_other = match text.as_bytes().first() {
        None => true,
        Some(first) => matches!(
            first,
            b'0'..=b'9' | b'-' | b'+' | b'.' | b'~' | b'n' | b'N' | b't' | b'T' | b'f' | b'F'
        ),
    };
    if !may_be_other {
        return None;
    }
    match resolve_plain(text) {
        Value::String(_) => None,
        other => Some(other),
    }
}

impl<'de, 'a> de::Deserializer<'de> for &mut Events<'a> {
    type Error = DataError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.next()? {
            Event::Scalar(text, style, _, tag) => {
                let result = match non_text(&text, style, tag.as_deref()) {
                    Some(value) => value
                        .into_deserializer()
                        .deserialize_any(visitor)
                        .map_err(|e| de::Error::custom(e.to_string())),
                    // Copied to its own length: the parser's buffer grew by doubling, and
                    // 200,000 people's fields would keep the slack.
                    None => visitor.visit_str(&text),
                };
                result.map_err(|e| self.locate(e))
            }
            Event::SequenceStart(..) => {
                self.enter()?;
                let value = visitor.visit_seq(Seq { events: self })?;
                self.depth -= 1;
                Ok(value)
            }
            Event::MappingStart(..) => {
                self.enter()?;
                let value = visitor.visit_map(Map { events: self })?;
                self.depth -= 1;
                Ok(value)
            }
            Event::StreamEnd | Event::DocumentEnd => {
                Err(self.error("the file holds no YAML document"))
            }
            other => Err(self.error(format!("unexpected YAML event {other:?}"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        if let Event::Scalar(text, ScalarStyle::Plain, _, None) = self.peek()?
            && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL")
        {
            self.next()?;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        match self.next()? {
            Event::Scalar(text, ..) => visitor
                .visit_enum(text.into_owned().into_deserializer())
                .map_err(|e: DataError| self.locate(e)),
            _ => Err(self.error("expected a plain value")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'e, 'a> {
    events: &'e mut Events<'a>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = DataError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DataError> {
        if matches!(self.events.peek()?, Event::SequenceEnd) {
            self.events.next()?;
            return Ok(None);
        }
        seed.deserialize(&mut *self.events).map(Some)
    }
}

struct Map<'e, 'a> {
    events: &'e mut Events<'a>,
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = DataError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DataError> {
        match self.events.next()? {
            Event::MappingEnd => Ok(None),
            Event::Scalar(text, ..) => seed
                .deserialize(text.as_ref().into_deserializer())
                .map(Some)
                .map_err(|e: DataError| self.events.locate(e)),
            _ => Err(self.events.error("mapping keys must be plain strings")),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DataError> {
        seed.deserialize(&mut *self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::directory::{Person, PersonStatus};

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Export {
        people: Vec<Person>,
        #[serde(default)]
        note: Option<String>,
    }

    #[test]
    fn a_document_reads_as_the_value_path_would() {
        let text = "people:\n  - email: ada@acme.example\n    given_name: \"Ada\"\n    family_name: 1815\n    status: active\n    manager: null\n";
        // An unquoted number is not a string, here as with serde_json's Value.
        let error = from_str::<Export>(text).unwrap_err();
        assert_eq!((error.line, error.column), (4, 18), "{error}");
        let text = text.replace("1815", "\"1815\"");
        let export: Export = from_str(&text).unwrap();
        assert_eq!(export.people[0].family_name, "1815");
        assert_eq!(export.people[0].status, PersonStatus::Active);
        assert_eq!(export.people[0].manager, None);
        assert_eq!(export.note, None);
    }

    #[test]
    fn what_config_refuses_data_refuses_too() {
        let cases = [
            ("people: &a []\n", "anchors"),
            ("people: []\nnote: *a\n", "alias"),
            ("people: !!python/object []\n", "tag"),
            ("people: []\n---\npeople: []\n", "second YAML document"),
            ("people: []\npeople: []\n", "duplicate field"),
            ("people: [\n", "syntax error"),
            ("", "no YAML document"),
            ("people: []\nextra: 1\n", "unknown field"),
        ];
        for (text, expected) in cases {
            let error = from_str::<Export>(text).unwrap_err();
            assert!(error.message.contains(expected), "{text:?}: {error}");
            assert!(error.line >= 1, "{text:?}: {error}");
        }
    }
}
