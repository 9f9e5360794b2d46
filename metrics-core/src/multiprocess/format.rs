//! prometheus_client's multi-process file format, read without trusting the file.
//!
//! A file is a 4-byte native-endian count of the bytes in use (`used`), 4 bytes of padding,
//! then entries back to back from offset 8: a 4-byte key length, the UTF-8 key, spaces up to
//! the next multiple of 8 (one to eight of them), an `f64` value and an `f64` timestamp. The
//! key is the JSON array `[metric_name, sample_name, {label: value, ...}, help]` (files
//! written before help joined the key have three elements).
//!
//! Files are named `<type>_<process>.db`, gauges `gauge_<mode>_<process>.db`.

use std::fmt;

/// One entry of a file.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) value: f64,
    pub(super) timestamp: f64,
}

/// Why a file was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FormatError {
    /// Shorter than its 8-byte header, or its `used` count is out of range.
    Header(String),
    /// An entry runs past `used`, or its key is not UTF-8.
    Entry { offset: usize, reason: &'static str },
    /// A key that is not the JSON prometheus_client writes.
    Key { offset: usize, reason: String },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(reason) => write!(f, "bad header: {reason}"),
            Self::Entry { offset, reason } => write!(f, "bad entry at byte {offset}: {reason}"),
            Self::Key { offset, reason } => write!(f, "bad key at byte {offset}: {reason}"),
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_ne_bytes(raw))
}

fn read_f64(bytes: &[u8], at: usize) -> Option<f64> {
    let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(f64::from_ne_bytes(raw))
}

/// How many bytes of `bytes` the file says are in use; 8 for a file just created (whose
/// header is still zero).
pub(super) fn used(bytes: &[u8]) -> Result<usize, FormatError> {
    let used = read_u32(bytes, 0)
        .ok_or_else(|| FormatError::Header(format!("{} bytes long", bytes.len())))?;
    let used = usize::try_from(used).unwrap_or(usize::MAX);
    match used {
        0 => Ok(8),
        8.. if used <= bytes.len() => Ok(used),
        _ => Err(FormatError::Header(format!(
            "{used} bytes said to be in use, of {}",
            bytes.len()
        ))),
    }
}

/// Every entry of a file's bytes, each key checked to be JSON of the expected shape. An empty
/// file is one a process has created and not yet sized: no entries.
pub(super) fn entries(bytes: &[u8]) -> Result<Vec<(Entry, Key)>, FormatError> {
    raw_entries(bytes)?
        .into_iter()
        .map(|raw| {
            let key = raw.key_text()?;
            let parsed = Key::parse(key).map_err(|reason| FormatError::Key {
                offset: raw.offset,
                reason,
            })?;
            Ok((
                Entry {
                    key: key.to_owned(),
                    value: raw.value,
                    timestamp: raw.timestamp,
                },
                parsed,
            ))
        })
        .collect()
}

/// An entry as it lies in the file, its key not parsed yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RawEntry<'a> {
    /// Where the entry starts, for errors.
    pub(super) offset: usize,
    /// The key's bytes, not checked to be UTF-8 yet.
    pub(super) key: &'a [u8],
    pub(super) value: f64,
    pub(super) timestamp: f64,
}

impl<'a> RawEntry<'a> {
    /// The key, which must be UTF-8.
    pub(super) fn key_text(&self) -> Result<&'a str, FormatError> {
        std::str::from_utf8(self.key).map_err(|_| FormatError::Entry {
            offset: self.offset,
            reason: "the key is not UTF-8",
        })
    }
}

/// Every entry of a file's bytes, checked for its layout only (a reader of many files checks
/// and parses each distinct key once).
pub(super) fn raw_entries(bytes: &[u8]) -> Result<Vec<RawEntry<'_>>, FormatError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let used = used(bytes)?;
    let data = &bytes[..used];
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < used {
        let bad = |reason| FormatError::Entry {
            offset: pos,
            reason,
        };
        let len = read_u32(data, pos).ok_or(bad("the key length runs past the end"))?;
        let len = usize::try_from(len).map_err(|_| bad("the key length is out of range"))?;
        let key_start = pos + 4;
        let key_end = key_start
            .checked_add(len)
            .filter(|&end| end <= used)
            .ok_or(bad("the key runs past the end"))?;
        // One to eight spaces bring the key to a multiple of 8.
        let value_at = key_end + (8 - (len + 4) % 8);
        let (Some(value), Some(timestamp)) =
            (read_f64(data, value_at), read_f64(data, value_at + 8))
        else {
            return Err(bad("the value runs past the end"));
        };
        out.push(RawEntry {
            offset: pos,
            key: &data[key_start..key_end],
            value,
            timestamp,
        });
        pos = value_at + 16;
    }
    Ok(out)
}

/// Writes a file's bytes: the header and `entries`, keys as given; used for compacted files.
/// Entries whose key is too long for the format are left out, and so are all that would take
/// the file past 4 GiB.
pub(super) fn write(entries: &[(String, f64, f64)]) -> Vec<u8> {
    let mut out = vec![0u8; 8];
    for (key, value, timestamp) in entries {
        let Ok(len) = u32::try_from(key.len()) else {
            continue;
        };
        let padding = 8 - (key.len() + 4) % 8;
        if u32::try_from(out.len() + 4 + key.len() + padding + 16).is_err() {
            break;
        }
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(key.as_bytes());
        out.resize(out.len() + padding, b' ');
        out.extend_from_slice(&value.to_ne_bytes());
        out.extend_from_slice(&timestamp.to_ne_bytes());
    }
    let used = u32::try_from(out.len()).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&used.to_ne_bytes());
    out
}

/// A decoded key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Key {
    pub(super) metric: String,
    pub(super) sample: String,
    /// Sorted by name, as prometheus_client compares them.
    pub(super) labels: Vec<(String, String)>,
    pub(super) help: String,
}

impl Key {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        p.expect(b'[')?;
        let metric = p.string()?;
        p.expect(b',')?;
        let sample = p.string()?;
        p.expect(b',')?;
        let labels = p.object()?;
        let help = if p.peek() == Some(b',') {
            p.expect(b',')?;
            p.string()?
        } else {
            String::new()
        };
        p.expect(b']')?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("text after the array at {}", p.i));
        }
        Ok(Self {
            metric,
            sample,
            labels,
            help,
        })
    }
}

/// Just enough JSON for keys: strings, one object of strings, one array.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at {}", c as char, self.i))
        }
    }

    fn object(&mut self) -> Result<Vec<(String, String)>, String> {
        self.expect(b'{')?;
        let mut pairs = Vec::new();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(pairs);
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            let value = self.string()?;
            pairs.push((name, value));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(format!("expected `,` or `}}` at {}", self.i)),
            }
        }
        pairs.sort();
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("a label appears twice".to_owned());
        }
        Ok(pairs)
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at {}", self.i))?;
        self.i += 4;
        Ok(digits)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while matches!(self.s.get(self.i), Some(c) if *c != b'"' && *c != b'\\' && *c >= 0x20) {
                self.i += 1;
            }
            // The input is a `&str`, and the run stops only at ASCII bytes: it is whole UTF-8.
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".to_owned());
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated escape".to_owned());
                    };
                    self.i += 1;
                    let decoded = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return Err(format!("bad escape at {}", self.i - 1)),
                    };
                    out.push(decoded);
                }
                _ => return Err(format!("control character at {}", self.i - 1)),
            }
        }
    }

    /// The character of a `\u` escape (after the `u`), a surrogate pair taken whole.
    fn unicode(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                return Err(format!("lone surrogate at {}", self.i));
            }
            self.i += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(format!("bad surrogate pair at {}", self.i));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| format!("bad character at {}", self.i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_python_writes_them() {
        let key = Key::parse(
            r#"["requests", "requests_total", {"route": "/a\"b", "method": "GET"}, "Requests \u00e9 \ud83d\ude00."]"#,
        )
        .unwrap();
        assert_eq!(key.metric, "requests");
        assert_eq!(key.sample, "requests_total");
        assert_eq!(
            key.labels,
            [
                ("method".to_owned(), "GET".to_owned()),
                ("route".to_owned(), "/a\"b".to_owned())
            ]
        );
        assert_eq!(key.help, "Requests é 😀.");
        let old = Key::parse(r#"["x", "x", {}]"#).unwrap();
        assert_eq!(old.help, "");
    }

    #[test]
    fn bad_keys_are_refused_not_guessed() {
        for bad in [
            "",
            "[",
            r#"["x", "x", {"a": 1}, ""]"#,
            r#"["x", "x", {"a": "1", "a": "2"}, ""]"#,
            r#"["x", "x", {}, ""] trailing"#,
            r#"["x", "x", {}, "\ud800"]"#,
            r#"["x", "x", {}, "\q"]"#,
            "[\"x\", \"x\", {}, \"a\u{1}\"]",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_written_file_reads_back() {
        let bytes = write(&[
            (r#"["a", "a_total", {}, "h"]"#.to_owned(), 3.0, 0.0),
            (r#"["b", "b", {"x": "y"}, "h"]"#.to_owned(), -1.5, 12.0),
        ]);
        let read = entries(&bytes).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].0.value, -1.5);
        assert_eq!(read[1].0.timestamp, 12.0);
        assert_eq!(read[1].1.labels, [("x".to_owned(), "y".to_owned())]);
    }

    #[test]
    fn truncated_and_corrupt_files_are_errors() {
        let bytes = write(&[(r#"["a", "a_total", {}, "h"]"#.to_owned(), 3.0, 0.0)]);
        // Every truncation of a valid file is refused, never read past its end.
        for len in 1..bytes.len() {
            assert!(entries(&bytes[..len]).is_err(), "truncated to {len}");
        }
        // An empty file is one a process has created and not yet sized.
        assert_eq!(entries(&[]).unwrap(), []);
        // A file just created by prometheus_client (header still zero) holds nothing.
        assert_eq!(entries(&[0u8; 64]).unwrap(), []);
        // A key length pointing far past the end.
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(entries(&huge).is_err());
        // `used` larger than the file.
        let mut long = bytes.clone();
        long[..4].copy_from_slice(&(u32::try_from(bytes.len()).unwrap() + 8).to_ne_bytes());
        assert!(entries(&long).is_err());
        // Arbitrary bytes (a SQLite file, say) are refused.
        let mut garbage = b"SQLite format 3\0".to_vec();
        garbage.resize(4096, 7);
        assert!(entries(&garbage).is_err());
    }
}
