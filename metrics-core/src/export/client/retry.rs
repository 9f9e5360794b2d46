//! When a failed push or export is tried again: exponential backoff with jitter, bounded in
//! time, honouring a server's `Retry-After`.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use super::PushError;

/// How a failed request is retried: on connection errors, timeouts and the answers that say
/// "later" (429, 502, 503, 504), after delays that double from
/// [`initial_delay`](Self::initial_delay) up to [`max_delay`](Self::max_delay), each drawn
/// at random between half and all of its value (so that many clients do not retry in step),
/// until [`max_elapsed`](Self::max_elapsed) has passed since the first attempt. A server's
/// `Retry-After` (seconds or an HTTP date) replaces the computed delay; one beyond the time
/// left ends the retries. Other answers (400, 401, 500, ...) and invalid URLs are not retried.
///
/// Defaults: 1 s, 30 s, 60 s, close to OpenTelemetry's SDKs. The request body is encoded once
/// and shared by the attempts, so retries cost no memory beyond it.
///
/// ```
/// use std::time::Duration;
/// use vitals_core::otlp::Retry;
///
/// let patient = Retry::default().max_elapsed(Duration::from_secs(300));
/// let once = Retry::never();
/// # let _ = (patient, once);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    initial: Duration,
    max_delay: Duration,
    max_elapsed: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// No retries: one attempt.
    #[must_use]
    pub fn never() -> Self {
        Self {
            max_elapsed: Duration::ZERO,
            ..Self::default()
        }
    }

    /// Sets the first delay. Defaults to 1 second.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// Sets the longest delay between two attempts. Defaults to 30 seconds.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets how long after the first attempt no new attempt starts. Defaults to 60 seconds;
    /// zero means one attempt.
    #[must_use]
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The delay before attempt `attempt + 1` (counting from 0), before jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max_delay)
    }

    /// How long to wait before the next attempt after `error`, when `elapsed` has passed since
    /// the first and `attempt` attempts failed; `None`: give up.
    pub(crate) fn next_delay(
        &self,
        error: &PushError,
        retry_after: Option<Duration>,
        attempt: u32,
        elapsed: Duration,
    ) -> Option<Duration> {
        if !retryable(error) {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| jitter(self.backoff(attempt)));
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }
}

/// Whether an attempt that failed this way may succeed later.
pub(crate) fn retryable(error: &PushError) -> bool {
    match error {
        PushError::Connect(_) | PushError::Timeout(_) => true,
        // A connection reset or closed mid-exchange; not an answer.
        PushError::Http(e) => !e.is_parse() && !e.is_user(),
        PushError::Rejected { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

/// A `Retry-After`: delay-seconds, or an HTTP date (IMF-fixdate, RFC 9110 §5.6.7), as the
/// time from now until then (zero for a date past). Anything else is `None`: the backoff's
/// delay applies.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = imf_fixdate(value)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = value.split(' ');
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let month = u64::try_from(MONTHS.iter().position(|m| *m == month)?).ok()? + 1;
    let year: u64 = year.parse().ok()?;
    let mut clock = time
        .split(':')
        .map(|p| p.parse::<u64>().ok().filter(|_| p.len() == 2));
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some()
        || !(1..=31).contains(&day)
        || year < 1970
        || h > 23
        || m > 59
        || s > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3_600 + m * 60 + s)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar, from 1970 on (Howard
/// Hinnant's algorithm, with March as the first month of the computing year).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A delay drawn at random between half of `delay` and all of it.
fn jitter(delay: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::UNIX_EPOCH
            .elapsed()
            .unwrap_or_default()
            .as_nanos(),
    );
    #[allow(clippy::cast_precision_loss)] // a fraction needs 53 bits
    let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    delay.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> PushError {
        PushError::Rejected {
            status,
            body: String::new(),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_within_half() {
        let retry = Retry::default();
        let secs: Vec<u64> = (0..8).map(|a| retry.backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry.backoff(u32::MAX), Duration::from_secs(30));
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(8));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn only_answers_that_mean_later_are_retried_and_only_within_the_budget() {
        let retry = Retry::default();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let zero = Duration::ZERO;
        assert!(retry
            .next_delay(&PushError::Connect(refused), None, 0, zero)
            .is_some());
        for status in [429, 502, 503, 504] {
            assert!(retry.next_delay(&rejected(status), None, 0, zero).is_some());
        }
        for status in [400, 401, 404, 413, 500] {
            assert_eq!(retry.next_delay(&rejected(status), None, 0, zero), None);
        }
        // Retry-After replaces the backoff, and one past the budget ends the retries.
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            retry.next_delay(&rejected(429), after, 0, zero),
            Some(Duration::from_secs(7))
        );
        let late = Duration::from_secs(55);
        assert_eq!(retry.next_delay(&rejected(429), after, 3, late), None);
        assert_eq!(
            Retry::never().next_delay(&rejected(503), None, 0, zero),
            None
        );
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        for bad in [
            "soon",
            "-1",
            "Wed, 21 Oct 2015 07:28:00 PST",
            "21 Oct 2015",
            "",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_dates_are_read_to_the_second() {
        // The examples of RFC 9110 and two that need the leap-year rules.
        assert_eq!(
            imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            imf_fixdate("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(
            imf_fixdate("Fri, 01 Mar 2024 00:00:00 GMT"),
            Some(1_709_251_200)
        );
        assert_eq!(imf_fixdate("Sun, 06 Nov 1994 24:49:37 GMT"), None);
        assert_eq!(imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(imf_fixdate("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        // A date an hour ahead is an hour's wait, give or take the second it took.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let hour_ahead = format_imf(now + 3_600);
        let wait = parse_retry_after(&hour_ahead).unwrap().as_secs();
        assert!((3_598..=3_600).contains(&wait), "{hour_ahead}: {wait}");
    }

    /// An IMF-fixdate for `secs` since the epoch (the weekday is not checked by the reader).
    fn format_imf(secs: u64) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let (days, rest) = (secs / 86_400, secs % 86_400);
        // Civil from days (the inverse of days_from_civil), for the test only.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        format!(
            "Mon, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
            MONTHS[usize::try_from(month - 1).unwrap()],
            rest / 3_600,
            rest % 3_600 / 60,
            rest % 60
        )
    }
}
