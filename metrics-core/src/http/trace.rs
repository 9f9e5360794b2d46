//! The trace a request belongs to, from its W3C `traceparent` header, for exemplars.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// A request's trace and span ids, from a W3C Trace Context `traceparent` header
/// (<https://www.w3.org/TR/trace-context/#traceparent-header>) or given directly
/// ([`new`](Self::new)). The adapters read it from each request and attach it, as the
/// `trace_id` and `span_id` labels of an exemplar, to the request's latency bucket and request
/// counter, shown in the OpenMetrics format; so a latency spike in Prometheus links to a trace
/// that explains it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The 32 lower-case hex digits of the trace id, then the 16 of the span id, eight to a
    /// word in memory order: a header's digits are checked once and copied, never decoded on
    /// the request's path, and they are already the exemplar's label values.
    digits: [u64; WORDS],
}

/// The words of a [`TraceContext`]'s digits: four of the trace id, two of the span id.
const WORDS: usize = 6;

/// The length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
const LENGTH: usize = 55;

/// Eight `'0'` digits, as a word: an all-zero id spelled out.
const ZEROS: u64 = u64::from_ne_bytes(*b"00000000");

impl TraceContext {
    /// A trace context from the ids' bytes (an OpenTelemetry `SpanContext`'s, for instance);
    /// `None` when either id is all zeros, which the specification calls invalid.
    #[must_use]
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8]) -> Option<Self> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut ascii = [0u8; 8 * WORDS];
        for (pair, b) in ascii
            .chunks_exact_mut(2)
            .zip(trace_id.iter().chain(&span_id))
        {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
        Some(Self {
            digits: std::array::from_fn(|i| word(&ascii, 8 * i)),
        })
    }

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
    /// adapters call, without a UTF-8 check of its own (hex digits and dashes are all ASCII).
    /// The 48 digits of the ids are checked eight at a time and kept as they are.
    #[must_use]
    pub fn from_traceparent_bytes(header: &[u8]) -> Option<Self> {
        fn blank(b: &u8) -> bool {
            *b == b' ' || *b == b'\t'
        }
        fn trimmed(h: &[u8]) -> Option<&[u8]> {
            let start = h.iter().position(|b| !blank(b))?;
            let end = h.iter().rposition(|b| !blank(b))? + 1;
            Some(&h[start..end])
        }
        // Headers almost never have blanks around them: then no scan is needed.
        let bytes = match (header.first(), header.last()) {
            (Some(first), Some(last)) if !blank(first) && !blank(last) => header,
            _ => trimmed(header)?,
        };
        let (Some(head), Some(rest)) = (bytes.first_chunk::<LENGTH>(), bytes.get(LENGTH..)) else {
            return None;
        };
        if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
            return None;
        }
        let version = byte(head[0], head[1])?;
        byte(head[53], head[54])?; // the flags: any value
                                   // Version 00 has exactly four fields; a later one may have more, after a dash.
        if version == 0xff || (!rest.is_empty() && (version == 0 || rest[0] != b'-')) {
            return None;
        }
        let (t0, t1, t2, t3) = (
            word(head, 3),
            word(head, 11),
            word(head, 19),
            word(head, 27),
        );
        let (s0, s1) = (word(head, 36), word(head, 44));
        let bad = not_hex(t0) | not_hex(t1) | not_hex(t2) | not_hex(t3) | not_hex(s0) | not_hex(s1);
        let zero_trace = (t0 ^ ZEROS) | (t1 ^ ZEROS) | (t2 ^ ZEROS) | (t3 ^ ZEROS) == 0;
        let zero_span = (s0 ^ ZEROS) | (s1 ^ ZEROS) == 0;
        (bad == 0 && !zero_trace && !zero_span).then_some(Self {
            digits: [t0, t1, t2, t3, s0, s1],
        })
    }

    /// The trace id, 16 bytes (32 hex digits in the header).
    #[must_use]
    pub fn trace_id(&self) -> [u8; 16] {
        decode(&self.ascii()[..32])
    }

    /// The span id, 8 bytes: in a `traceparent`, the caller's span (its `parent-id` field).
    #[must_use]
    pub fn span_id(&self) -> [u8; 8] {
        decode(&self.ascii()[32..])
    }

    /// The digits of both ids, trace id first.
    fn ascii(&self) -> [u8; 8 * WORDS] {
        let mut ascii = [0u8; 8 * WORDS];
        for (eight, w) in ascii.chunks_exact_mut(8).zip(self.digits) {
            eight.copy_from_slice(&w.to_ne_bytes());
        }
        ascii
    }

    /// The exemplar of `value` in this trace, with `trace_id` and `span_id` labels in
    /// lower-case hex.
    fn exemplar(&self, value: f64) -> Option<crate::metric::Exemplar> {
        let ascii = self.ascii();
        let digits = std::str::from_utf8(&ascii).ok()?;
        let (trace, span) = digits.split_at(32);
        crate::metric::Exemplar::new(&[("trace_id", trace), ("span_id", span)], value).ok()
    }
}

#[cfg(feature = "opentelemetry")]
impl TraceContext {
    /// The ids of the current OpenTelemetry span, when it has valid ones and is sampled (an
    /// exemplar should point at a trace that is kept). The context is opentelemetry 0.33's:
    /// spans started with its API and made current, or `tracing` spans under
    /// tracing-opentelemetry's layer, which makes an entered span's context current. A
    /// program on another opentelemetry version can hand its ids to [`new`](Self::new).
    #[must_use]
    pub fn current() -> Option<Self> {
        use opentelemetry::trace::TraceContextExt as _;
        opentelemetry::Context::map_current(|context| {
            let span = context.span();
            let ids = span.span_context();
            if !ids.is_valid() || !ids.is_sampled() {
                return None;
            }
            Self::new(ids.trace_id().to_bytes(), ids.span_id().to_bytes())
        })
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ascii = self.ascii();
        let digits = String::from_utf8_lossy(&ascii);
        let (trace, span) = digits.split_at(32);
        f.debug_struct("TraceContext")
            .field("trace_id", &trace)
            .field("span_id", &span)
            .finish()
    }
}

/// The eight bytes at `at`, as a word in memory order.
#[inline]
fn word<const N: usize>(bytes: &[u8; N], at: usize) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(eight)
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

/// Zero when each of the eight bytes of `x` is a lower-case hex digit, and not otherwise:
/// byte-parallel arithmetic on the word (no byte is compared on its own, and the order of the
/// bytes does not matter).
#[inline]
fn not_hex(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // The high bit of each byte of `x` at least `n` (for bytes below 0x80; the others fail
    // on `x & HIGH`): setting the bit first keeps borrows inside each byte.
    let at_least = |n: u64| ((x | HIGH).wrapping_sub(n * ONES)) & HIGH;
    // '0'..='9' are 0x30..0x39 and 'a'..='f' 0x61..0x66.
    let digit = at_least(0x30) & !at_least(0x3a);
    let letter = at_least(0x61) & !at_least(0x67);
    (x & HIGH) | ((digit | letter) ^ HIGH)
}

/// The byte two lower-case hex digits spell.
#[inline]
fn byte(high: u8, low: u8) -> Option<u8> {
    let (high, low) = (HEX[usize::from(high)], HEX[usize::from(low)]);
    ((high | low) & NOT_HEX == 0).then_some(high << 4 | low)
}

/// The bytes that checked digits spell (two digits each).
fn decode<const N: usize>(digits: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (b, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *b = byte(pair[0], pair[1]).unwrap_or_default();
    }
    out
}

/// When the latest trace was kept, for a route and method or a function: exemplars are
/// samples, at most one per millisecond. A request or call not due pays this one load.
#[derive(Debug, Default)]
pub(crate) struct TraceSampler {
    /// The clock reading at the start of the latest request or call that kept its trace; 0
    /// before the first.
    last: AtomicU64,
}

impl TraceSampler {
    pub(crate) const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
        }
    }

    /// Whether what started at `at` (a reading of [`crate::util::clock::now`]) may keep its
    /// trace: nothing kept one in the millisecond before it (an older start arriving late
    /// is not due either).
    #[inline]
    pub(crate) fn due(&self, at: u64) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last == 0 || at >= last.saturating_add(crate::util::clock::ticks_per_millisecond())
    }

    /// What started at `at` kept its trace.
    #[inline]
    pub(crate) fn kept(&self, at: u64) {
        // A plain store: two racing here both keep theirs, which is harmless.
        self.last.store(at, Ordering::Relaxed);
    }
}

/// The latest traced value of a series (or a histogram bucket), kept without a lock or an
/// allocation: a sequence number, odd while a write is under way, and seven words (the ids'
/// 48 digits, the value's bits), one cache line. A write that meets another in progress is
/// dropped (the other is as recent); a read that meets one tries again, a bounded number of
/// times. The exemplar is built from the words at scrape.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct TraceSlot {
    sequence: AtomicU64,
    words: [AtomicU64; WORDS + 1],
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
        let values = context.digits.iter().copied().chain([value.to_bits()]);
        for (word, v) in self.words.iter().zip(values) {
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
            let words: [u64; WORDS + 1] =
                std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                let context = TraceContext {
                    digits: std::array::from_fn(|i| words[i]),
                };
                return context.exemplar(f64::from_bits(words[WORDS]));
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

    fn labels(exemplar: &crate::metric::Exemplar) -> Vec<(String, String)> {
        exemplar.labels().to_vec()
    }

    #[test]
    fn a_valid_traceparent_gives_its_ids() {
        let context = TraceContext::from_traceparent(VALID).unwrap();
        let trace = [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ];
        let span = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
        assert_eq!(context.trace_id(), trace);
        assert_eq!(context.span_id(), span);
        // The same ids given as bytes make the same context.
        assert_eq!(TraceContext::new(trace, span), Some(context));
        assert_eq!(
            format!("{context:?}"),
            r#"TraceContext { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" }"#
        );
        let slot = TraceSlot::default();
        assert!(slot.get().is_none());
        slot.set(&context, 0.25);
        let exemplar = slot.get().unwrap();
        assert_eq!(exemplar.value(), 0.25);
        assert_eq!(
            labels(&exemplar),
            [
                ("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into()),
                ("span_id".into(), "00f067aa0ba902b7".into())
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
    fn ids_given_as_bytes_round_trip_and_zero_ids_are_refused() {
        for (trace, span) in [
            ([1; 16], [2; 8]),
            ([0xff; 16], [0x80; 8]),
            ([0; 16], [0; 8]),
        ] {
            let mut trace = trace;
            trace[15] = 0xa5;
            let context = TraceContext::new(trace, span);
            if span == [0; 8] {
                assert_eq!(context, None);
                continue;
            }
            let context = context.unwrap();
            assert_eq!((context.trace_id(), context.span_id()), (trace, span));
        }
        assert_eq!(TraceContext::new([0; 16], [1; 8]), None);
    }

    #[test]
    fn the_word_at_a_time_check_agrees_with_the_table_for_every_byte() {
        let base = *b"0f1e2d3c";
        for position in 0..8 {
            for b in 0..=255u8 {
                let mut digits = base;
                digits[position] = b;
                let expected = digits.iter().all(|&d| HEX[usize::from(d)] != NOT_HEX);
                let word = u64::from_ne_bytes(digits);
                assert_eq!(not_hex(word) == 0, expected, "{digits:?}");
            }
        }
        assert_eq!(not_hex(u64::from_ne_bytes(*b"09afafaf")), 0);
        assert_ne!(not_hex(u64::from_ne_bytes(*b"09afafag")), 0);
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
            &VALID.replace("4bf9", "4bg9"), // not hex, a letter past f
            &VALID.to_uppercase(),          // upper-case hex
            &VALID.replace('-', "_"),       // wrong separators
            &VALID.replace("-01", "-0x"),   // flags not hex
            zero_trace,
            zero_span,
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            &format!("{}x", VALID.replacen("00", "01", 1)), // a later version, no dash
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad:?}");
        }
        // Each digit of each id, replaced by each byte that is not a lower-case hex digit.
        for position in (3..35).chain(36..52) {
            for b in (0..=255u8).filter(|&b| HEX[usize::from(b)] == NOT_HEX) {
                let mut header = VALID.as_bytes().to_vec();
                header[position] = b;
                assert_eq!(TraceContext::from_traceparent_bytes(&header), None);
            }
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
