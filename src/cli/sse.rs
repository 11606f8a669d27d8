//! Reads a `text/event-stream` as the HTML standard's event-stream
//! interpretation defines it (the "Server-sent events" section of the WHATWG
//! HTML standard), so `heartbeat refresh` follows any conforming stream, not
//! only the bytes our own daemon happens to write.
//!
//! Lines end in CRLF, LF or CR; a line starting with `:` is a comment; `field:
//! value` loses one space after the colon; `data` lines are joined with LF; `id`
//! sets the last event id (ignored if it holds NUL); a blank line dispatches the
//! event, unless no data was given. Chunks may split lines (and UTF-8 sequences)
//! anywhere.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name; `message` when none was given.
    pub event: String,
    pub data: String,
    /// The last event id as of this event (it carries over to later events).
    pub id: String,
}

/// An incremental parser: feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF starting this one ends nothing.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: String,
    last_id: String,
}

impl SseParser {
    /// The last event id seen, for `Last-Event-ID` on reconnecting.
    pub fn last_id(&self) -> &str {
        &self.last_id
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_ended(&String::from_utf8_lossy(&line)) {
                        out.push(event);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn line_ended(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = value.to_string(),
            // `retry` sets the browser's reconnection delay; we use our own.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            return None;
        }
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_the_standards_parsing_rules() {
        // The standard's own examples: joined data lines, a comment, a
        // field without a colon, an id carried over, a missing space.
        let mut p = SseParser::default();
        let events = p.feed(
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\nevent: add\ndata: YHOO\ndata: +2\ndata\n\n",
        );
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(events[0].data, "first event");
        assert_eq!(events[0].id, "1");
        assert_eq!(events[1].data, "second event");
        assert_eq!(events[1].id, "", "an empty id field resets the id");
        assert_eq!(events[2].data, " third event", "only one space is removed");
        assert_eq!(events[3].event, "add");
        assert_eq!(events[3].data, "YHOO\n+2\n");
        assert_eq!(events[0].event, "message");
    }

    #[test]
    fn any_line_ending_and_any_chunking_give_the_same_events() {
        let text =
            "id: 7\r\nevent: phase\r\ndata: {\"a\":\"é\"}\r\n\r\nid: 8\revent: state\rdata: x\r\r";
        let mut whole = SseParser::default();
        let expected = whole.feed(text.as_bytes());
        assert_eq!(expected.len(), 2);
        assert_eq!(expected[0].data, "{\"a\":\"é\"}");
        assert_eq!(expected[1].id, "8");
        for cut in 1..text.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&text.as_bytes()[..cut]);
            got.extend(p.feed(&text.as_bytes()[cut..]));
            assert_eq!(got, expected, "split at byte {cut}");
        }
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: phase\n\n: keep-alive\n\n").is_empty());
        assert_eq!(p.feed(b"data: y\n\n")[0].event, "message");
    }
}
