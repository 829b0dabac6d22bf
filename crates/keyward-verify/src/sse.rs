//! An incremental parser of server-sent events (the WHATWG "event stream"
//! format): bytes in, in whatever chunks the network delivers them; events
//! and comments out.

/// One thing the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A `:` line: keyward's heartbeat.
    Comment,
    /// A dispatched event.
    Event {
        /// The `event:` field (`message` when absent).
        name: String,
        /// The `data:` lines, joined with `\n`.
        data: String,
        /// The `id:` field of this event, if it had one.
        id: Option<String>,
    },
}

/// Longest line kept: a longer one is a broken or hostile stream.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting this one belongs to it.
    after_cr: bool,
    name: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

/// The stream broke the format badly enough that it must be reconnected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLong;

impl Parser {
    /// Feeds bytes; every complete item is pushed onto `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Item>) -> Result<(), TooLong> {
        for &b in bytes {
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line(&String::from_utf8_lossy(&line), out);
                }
                _ if self.line.len() >= MAX_LINE => return Err(TooLong),
                _ => self.line.push(b),
            }
        }
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<Item>) {
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line.starts_with(':') {
            return out.push(Item::Comment);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            // `retry` and unknown fields: the reconnection delay is ours.
            _ => {}
        }
    }

    /// A blank line ends an event. An event with a name but no data (keyward's
    /// `event: reset`) is dispatched too, unlike in browsers, since its name
    /// is the message.
    fn dispatch(&mut self, out: &mut Vec<Item>) {
        let (name, data, id) = (self.name.take(), self.data.take(), self.id.take());
        if name.is_none() && data.is_none() {
            return;
        }
        out.push(Item::Event {
            name: name.unwrap_or_else(|| "message".to_string()),
            data: data.unwrap_or_default(),
            id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(stream: &str, chunk: usize) -> Vec<Item> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for part in stream.as_bytes().chunks(chunk) {
            parser.feed(part, &mut out).unwrap();
        }
        out
    }

    fn event(name: &str, data: &str, id: Option<&str>) -> Item {
        Item::Event {
            name: name.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn keyward_s_stream_parses_whatever_the_chunking() {
        let stream = "event: reset\ndata:\n\n\
                      event: revoked\nid: c1\ndata: {\"kid\":\"k\"}\n\n\
                      : keep-alive\n\n\
                      event:revoked\r\nid:c2\r\ndata:{\"a\":1}\r\n\r\n\
                      event: revoked\rid: c3\rdata: x\r\r";
        let expected = vec![
            event("reset", "", None),
            event("revoked", "{\"kid\":\"k\"}", Some("c1")),
            Item::Comment,
            event("revoked", "{\"a\":1}", Some("c2")),
            event("revoked", "x", Some("c3")),
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(
                parse_in_chunks(stream, chunk),
                expected,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_nameless_event_without_data_is_not_dispatched_and_data_lines_join() {
        let stream = "id: 5\n\nretry: 10\n\ndata: a\ndata: b\nunknown: z\n\nevent: reset\n\n";
        assert_eq!(
            parse_in_chunks(stream, 4),
            vec![event("message", "a\nb", None), event("reset", "", None)]
        );
    }

    #[test]
    fn an_event_without_its_blank_line_is_not_yet_dispatched() {
        assert_eq!(parse_in_chunks("event: revoked\ndata: x\n", 5), vec![]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        let big = vec![b'a'; MAX_LINE + 1];
        assert_eq!(parser.feed(&big, &mut out), Err(TooLong));
    }
}
