//! The trace a request belongs to, from its W3C `traceparent` header, for exemplars.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// A request's trace and span ids, from a W3C Trace Context `traceparent` header
/// (<https://www.w3.org/TR/trace-context/#traceparent-header>). The adapters read it from
/// each request and attach it, as the `trace_id` and `span_id` labels of an exemplar, to the
/// request's latency bucket and request counter, shown in the OpenMetrics format; so a
/// latency spike in Prometheus links to a trace that explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

/// The length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
const LENGTH: usize = 55;

impl TraceContext {
    /// Parses a `traceparent` value: `version-trace_id-parent_id-flags`, lower-case hex, the
    /// version not `ff`, neither id all zeros, and for version `00` nothing after the flags
    /// (later versions may append fields after a `-`, which are ignored, as the
    /// specification asks). Anything else is `None`: a malformed header adds no exemplar and
    /// never fails the request.
    #[must_use]
    pub fn from_traceparent(header: &str) -> Option<Self> {
        Self::from_traceparent_bytes(header.as_bytes())
    }

    /// [`from_traceparent`](Self::from_traceparent) on the header's raw bytes: what the
    /// adapters call, in one pass over the bytes, without a UTF-8 check of its own (hex
    /// digits and dashes are all ASCII).
    #[must_use]
    pub fn from_traceparent_bytes(header: &[u8]) -> Option<Self> {
        let blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = header.iter().position(|b| !blank(b))?;
        let end = header.iter().rposition(|b| !blank(b))? + 1;
        let bytes = &header[start..end];
        if bytes.len() < LENGTH || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = byte(bytes[0], bytes[1])?;
        byte(bytes[53], bytes[54])?; // the flags: any value
                                     // Version 00 has exactly four fields; a later one may have more, after a dash.
        let rest = &bytes[LENGTH..];
        if version == 0xff || (!rest.is_empty() && (version == 0 || rest[0] != b'-')) {
            return None;
        }
        // Eight digits at a time (the ids are most of the header).
        let mut valid = true;
        let mut decode = |digits: &[u8], out: &mut [u8]| {
            for (eight, four) in digits.chunks_exact(8).zip(out.chunks_exact_mut(4)) {
                let (bytes, ok) = hex8(eight);
                valid &= ok;
                four.copy_from_slice(&bytes);
            }
        };
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        decode(&bytes[3..35], &mut trace_id);
        decode(&bytes[36..52], &mut span_id);
        if !valid {
            return None;
        }
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self { trace_id, span_id })
    }

    /// The trace id, 16 bytes (32 hex digits in the header).
    #[must_use]
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The id of the caller's span (the `parent-id` field), 8 bytes.
    #[must_use]
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The ids as the two words of a [`TraceSlot`] and the third.
    fn words(&self) -> [u64; 3] {
        let (high, low) = self.trace_id.split_at(8);
        let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        [word(high), word(low), u64::from_be_bytes(self.span_id)]
    }

    fn from_words([high, low, span]: [u64; 3]) -> Self {
        let mut trace_id = [0; 16];
        trace_id[..8].copy_from_slice(&high.to_be_bytes());
        trace_id[8..].copy_from_slice(&low.to_be_bytes());
        Self {
            trace_id,
            span_id: span.to_be_bytes(),
        }
    }

    /// The exemplar of `value` in this trace, with `trace_id` and `span_id` labels in
    /// lower-case hex.
    fn exemplar(&self, value: f64) -> Option<crate::metric::Exemplar> {
        let (trace, span) = (hex(&self.trace_id), hex(&self.span_id));
        crate::metric::Exemplar::new(&[("trace_id", &trace), ("span_id", &span)], value).ok()
    }
}

/// The value of each lower-case hex digit, and [`NOT_HEX`] for every other byte.
static HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0u8;
    while i < 16 {
        table[b"0123456789abcdef"[i as usize] as usize] = i;
        i += 1;
    }
    table
};
/// A flag no digit's value has.
const NOT_HEX: u8 = 0x10;

/// The four bytes that eight lower-case hex digits spell, and whether they all are such
/// digits: byte-parallel arithmetic on one 64-bit word (no byte is compared on its own).
#[inline]
fn hex8(digits: &[u8]) -> ([u8; 4], bool) {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut word = [0u8; 8];
    word.copy_from_slice(&digits[..8]);
    let x = u64::from_le_bytes(word);
    // The high bit of each byte of `x` at least `n` (for bytes below 0x80, which the check
    // of `x & HIGH` below ensures): setting the bit first keeps borrows inside each byte.
    let at_least = |n: u64| ((x | HIGH).wrapping_sub(n * ONES)) & HIGH;
    let digit = at_least(0x30) & !at_least(0x3a);
    let letter = at_least(0x61) & !at_least(0x67);
    let valid = x & HIGH == 0 && (digit | letter) == HIGH;
    // '0'..'9' are 0x30..0x39 and 'a'..'f' 0x61..0x66: the low nibble, plus 9 for letters.
    let letters = letter >> 7;
    let nibbles = (x & 0x0f0f_0f0f_0f0f_0f0f) + (letters << 3) + letters;
    // Each even byte takes its nibble as the high half and the next byte's as the low half;
    // then the even bytes are packed together.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let packed = (pairs | (pairs >> 16)) & 0xffff_ffff;
    #[allow(clippy::cast_possible_truncation)] // masked to 32 bits
    (u32::to_le_bytes(packed as u32), valid)
}

/// The byte two lower-case hex digits spell.
#[inline]
fn byte(high: u8, low: u8) -> Option<u8> {
    let (high, low) = (HEX[usize::from(high)], HEX[usize::from(low)]);
    ((high | low) & NOT_HEX == 0).then_some(high << 4 | low)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The latest traced value of a series (or a histogram bucket), kept without a lock or an
/// allocation: a sequence number, odd while a write is under way, and four words (the
/// trace id, the span id, the value's bits). A write that meets another in progress is
/// dropped (the other is as recent); a read that meets one tries again, a bounded number of
/// times. The exemplar is built from it at scrape.
#[derive(Debug, Default)]
pub(crate) struct TraceSlot {
    sequence: AtomicU64,
    words: [AtomicU64; 4],
}

impl TraceSlot {
    pub(crate) fn set(&self, context: &TraceContext, value: f64) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        if sequence % 2 == 1
            || self
                .sequence
                .compare_exchange(sequence, sequence + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The words after the odd sequence number, for every reader that sees them.
        fence(Ordering::Release);
        let [high, low, span] = context.words();
        for (word, v) in self.words.iter().zip([high, low, span, value.to_bits()]) {
            word.store(v, Ordering::Relaxed);
        }
        self.sequence.store(sequence + 2, Ordering::Release);
    }

    /// The exemplar kept, if any.
    pub(crate) fn get(&self) -> Option<crate::metric::Exemplar> {
        for _ in 0..64 {
            let before = self.sequence.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let words: [u64; 4] = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                let context = TraceContext::from_words([words[0], words[1], words[2]]);
                return context.exemplar(f64::from_bits(words[3]));
            }
        }
        None
    }

    pub(crate) fn clear(&self) {
        // Back to "never written" unless a write is under way (which then wins).
        let sequence = self.sequence.load(Ordering::Relaxed);
        if sequence % 2 == 0 {
            let _ =
                self.sequence
                    .compare_exchange(sequence, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_gives_its_ids() {
        let context = TraceContext::from_traceparent(VALID).unwrap();
        assert_eq!(hex(&context.trace_id()), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&context.span_id()), "00f067aa0ba902b7");
        let slot = TraceSlot::default();
        assert!(slot.get().is_none());
        slot.set(&context, 0.25);
        let exemplar = slot.get().unwrap();
        assert_eq!(exemplar.value(), 0.25);
        let labels: Vec<(&str, &str)> = exemplar
            .labels()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                ("span_id", "00f067aa0ba902b7")
            ]
        );
        slot.clear();
        assert!(slot.get().is_none());
        // Surrounding whitespace, unsampled flags and a later version with more fields.
        assert!(TraceContext::from_traceparent(&format!(" {VALID}\t")).is_some());
        assert!(TraceContext::from_traceparent(&VALID.replace("-01", "-00")).is_some());
        let later = format!("{}-extra", VALID.replacen("00", "01", 1));
        assert_eq!(TraceContext::from_traceparent(&later), Some(context));
    }

    #[test]
    fn the_word_at_a_time_decoder_agrees_with_the_table_for_every_byte() {
        let reference = |digits: &[u8]| -> Option<[u8; 4]> {
            let mut out = [0; 4];
            for (pair, out) in digits.chunks_exact(2).zip(&mut out) {
                *out = byte(pair[0], pair[1])?;
            }
            Some(out)
        };
        let base = *b"0f1e2d3c";
        for position in 0..8 {
            for b in 0..=255u8 {
                let mut digits = base;
                digits[position] = b;
                let (bytes, ok) = hex8(&digits);
                assert_eq!(ok.then_some(bytes), reference(&digits), "{digits:?}");
            }
        }
        assert_eq!(hex8(b"00000000"), ([0; 4], true));
        assert_eq!(hex8(b"ffffffff"), ([0xff; 4], true));
        assert_eq!(hex8(b"4bf92f35"), ([0x4b, 0xf9, 0x2f, 0x35], true));
    }

    #[test]
    fn malformed_traceparents_give_nothing() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        for bad in [
            "",
            "00",
            &VALID[..54],                   // too short
            &format!("{VALID}0"),           // too long for version 00
            &format!("{VALID}-x"),          // version 00 has four fields
            &VALID.replacen("00", "ff", 1), // version ff is invalid
            &VALID.replace('4', "G"),       // not hex
            &VALID.to_uppercase(),          // upper-case hex
            &VALID.replace('-', "_"),       // wrong separators
            zero_trace,
            zero_span,
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            &format!("{}x", VALID.replacen("00", "01", 1)), // a later version, no dash
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad:?}");
        }
    }
}

#[cfg(all(test, not(vitals_loom)))]
mod concurrent {
    use super::*;

    #[test]
    fn readers_see_whole_exemplars_while_writers_race() {
        // Each writer's trace id, span id and value are the same number: a torn read would
        // show two different ones.
        let slot = std::sync::Arc::new(TraceSlot::default());
        let context = |n: u64| {
            let digits = format!("00-{n:032x}-{n:016x}-01");
            TraceContext::from_traceparent(&digits).unwrap()
        };
        std::thread::scope(|s| {
            for w in 1..=2u64 {
                let slot = &slot;
                s.spawn(move || {
                    for i in 0..20_000u64 {
                        let n = w * 1_000_000 + i + 1;
                        #[allow(clippy::cast_precision_loss)]
                        slot.set(&context(n), n as f64);
                    }
                });
            }
            for _ in 0..20_000 {
                if let Some(exemplar) = slot.get() {
                    let trace = u128::from_str_radix(&exemplar.labels()[0].1, 16).unwrap();
                    let span = u64::from_str_radix(&exemplar.labels()[1].1, 16).unwrap();
                    assert_eq!(trace, u128::from(span));
                    #[allow(clippy::cast_precision_loss)]
                    let value = span as f64;
                    assert_eq!(exemplar.value(), value);
                }
            }
        });
        assert!(slot.get().is_some());
    }
}
